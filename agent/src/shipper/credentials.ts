/** gRPC channel credentials and options from the agent's `collector` config. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '@sealtrail/errors';
import type { AgentConfig } from '../config.js';

export const CA_FILE_NAME = 'collector-ca.crt';

export interface Transport {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
  tls: boolean;
}

function read(file: string, key: string, hint: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(
      `collector.${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); ${hint}`,
    );
  }
}

export function transport(cfg: AgentConfig): Transport {
  const c = cfg.collector;
  const options: grpc.ChannelOptions = {};
  if (c.compression === 'gzip') options['grpc.default_compression_algorithm'] = 2;
  if (c.insecure) return { credentials: grpc.credentials.createInsecure(), options, tls: false };
  const caFile = c.ca_file ?? join(cfg.agent.data_dir, CA_FILE_NAME);
  const ca = read(caFile, 'ca_file', 'run `sealtrail-agent enroll` first, or set collector.ca_file');
  if (!!c.cert_file !== !!c.key_file)
    throw new ConfigError('collector: cert_file and key_file go together (mutual TLS)');
  const key = c.key_file ? read(c.key_file, 'key_file', 'the client key for mutual TLS') : null;
  const cert = c.cert_file ? read(c.cert_file, 'cert_file', 'the client certificate for mutual TLS') : null;
  if (c.server_name) options['grpc.ssl_target_name_override'] = c.server_name;
  return { credentials: grpc.credentials.createSsl(ca, key, cert), options, tls: true };
}
