/** `sealtrail-collector`: the only module that may exit the process. Exit codes: 0 ok, 1 runtime failure, 2 usage/config. */
import { parseDuration } from '@sealtrail/config';
import { ConfigError } from '@sealtrail/errors';
import { quietKnownWarnings } from '@sealtrail/telemetry';
import { Command, CommanderError } from 'commander';
import { Collector } from './collector.js';
import { loadCollectorConfig, pkiDir } from './config.js';
import { formatDeadLetter, listDeadLetters, replayDeadLetters } from './exporters/deadletter.js';
import { initPki, pkiPaths } from './pki/pki.js';
import { createToken, readTokenSecret } from './pki/tokens.js';
import { verifySpool } from './spool/verify.js';
import { COLLECTOR_VERSION } from './version.js';

function program(): Command {
  const cmd = new Command('sealtrail-collector')
    .description('Authenticates agents, verifies their hash chains, stores events durably and exports them')
    .version(COLLECTOR_VERSION)
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s) });

  cmd
    .command('run')
    .description('run the collector in the foreground')
    .requiredOption('-c, --config <file>', 'collector YAML config')
    .action(async (opts: { config: string }) => {
      const collector = new Collector(loadCollectorConfig(opts.config));
      // Before start: a SIGHUP (`systemctl reload`) that arrives while the collector starts
      // must not take Node's default action, which is to exit.
      process.on('SIGHUP', () => {
        collector.log.info('SIGHUP: re-reading the API keys');
        collector.reloadApiKeys();
      });
      await collector.start();
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          collector.log.info({ signal }, 'stopping');
          collector.stop().then(resolve, resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  cmd
    .command('check-config')
    .description('validate a config file; exit 0 when valid, 2 naming each problem')
    .argument('<file>', 'collector YAML config')
    .action((file: string) => {
      const cfg = loadCollectorConfig(file);
      console.log(
        `${file}: valid (${cfg.exporters.length} exporter${cfg.exporters.length === 1 ? '' : 's'})`,
      );
    });

  cmd
    .command('verify')
    .description(
      "re-verify a stopped collector's spool offline; exit 0 when every chain verifies, 1 otherwise",
    )
    .requiredOption('-d, --data-dir <dir>', 'the collector data_dir')
    .option('--agent <id>', 'verify only this agent')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { dataDir: string; agent?: string; json?: boolean }) => {
      const report = await verifySpool(opts.dataDir, opts.agent);
      if (opts.json) console.log(JSON.stringify(report));
      else {
        for (const a of report.agents) {
          const where = a.fault
            ? `: ${a.fault.fault} at seq ${a.fault.seq} of chain ${a.fault.chain_id} (${a.fault.detail})`
            : '';
          console.log(
            `${a.ok ? 'ok  ' : 'FAIL'} agent ${a.agent_id}: ${a.records} records in ${a.chains} chain(s), head ${a.head.seq ?? '-'}${where}`,
          );
        }
        console.log(
          `${report.ok ? 'spool intact' : 'spool damaged'}: ${report.records} records verified, ${report.violations} integrity violation(s) on record`,
        );
      }
      if (!report.ok) process.exitCode = 1;
    });

  const dataDirOf = (opts: { dataDir?: string; config?: string }): string => {
    if (opts.dataDir) return opts.dataDir;
    if (opts.config) return loadCollectorConfig(opts.config).collector.data_dir;
    throw new ConfigError('deadletter: give --data-dir DIR or --config FILE');
  };
  const deadletter = cmd
    .command('deadletter')
    .description(
      "events an exporter's destination refused for good, kept with the reason (collector stopped)",
    );
  deadletter
    .command('list')
    .description('list dead letters, oldest first')
    .option('-d, --data-dir <dir>', 'the collector data_dir')
    .option('-c, --config <file>', 'collector YAML config (for its data_dir)')
    .option('--exporter <name>', 'only this exporter')
    .option('--queued', 'list those queued for replay instead')
    .option('--json', 'one JSON object per line')
    .action(
      async (opts: {
        dataDir?: string;
        config?: string;
        exporter?: string;
        queued?: boolean;
        json?: boolean;
      }) => {
        const letters = await listDeadLetters(dataDirOf(opts), opts);
        for (const d of letters) console.log(opts.json ? JSON.stringify(d) : formatDeadLetter(d));
        if (!opts.json) console.error(`${letters.length} dead letter${letters.length === 1 ? '' : 's'}`);
      },
    );
  deadletter
    .command('replay')
    .description("queue an exporter's dead letters for delivery at the collector's next start")
    .option('-d, --data-dir <dir>', 'the collector data_dir')
    .option('-c, --config <file>', 'collector YAML config (for its data_dir)')
    .requiredOption('--exporter <name>', 'the exporter whose dead letters to replay')
    .option('--n <numbers...>', 'only these dead letters (numbers from `deadletter list`)')
    .action(async (opts: { dataDir?: string; config?: string; exporter: string; n?: string[] }) => {
      const numbers = opts.n?.map((x) => x.replace(/^#/, ''));
      const queued = await replayDeadLetters(dataDirOf(opts), opts.exporter, numbers);
      console.log(
        `${queued} dead letter${queued === 1 ? '' : 's'} of ${opts.exporter} queued for replay at the next start`,
      );
    });

  cmd
    .command('init')
    .description(
      'create the collector PKI: a CA, a server certificate, an admin API key and the enrollment-token secret',
    )
    .option('-c, --config <file>', 'collector YAML config (its pki.dir or <data_dir>/pki is used)')
    .option('--dir <dir>', 'write the PKI here instead')
    .option('--san <name...>', 'extra DNS names or IP addresses for the server certificate')
    .action(async (opts: { config?: string; dir?: string; san?: string[] }) => {
      const dir = opts.dir ?? (opts.config ? pkiDir(loadCollectorConfig(opts.config)) : DEFAULT_PKI_DIR);
      const r = await initPki(dir, opts.san ?? []);
      console.log(`PKI written to ${r.paths.dir}
  CA certificate      ${r.paths.caCert}   (give this to agents: --ca, or pin --ca-fingerprint)
  CA fingerprint      ${r.caFingerprint}
  server certificate  ${r.paths.serverCert}   (SANs: ${r.sans.join(', ')})
  private keys        ${r.paths.caKey}, ${r.paths.serverKey}   (mode 0600)

Admin API key (shown once; only its hash is kept in ${r.paths.apiKeys}):
  ${r.apiKey}

Next: \`sealtrail-collector token create\` for each agent, then on the host
  sealtrail-agent enroll --collector HOST:PORT --token TOKEN --ca-fingerprint ${r.caFingerprint}`);
    });

  const token = cmd.command('token').description('enrollment tokens');
  token
    .command('create')
    .description('print a one-time enrollment token')
    .option('-c, --config <file>', 'collector YAML config (for its PKI dir and token_ttl)')
    .option('--dir <dir>', 'the PKI dir')
    .option('--ttl <duration>', 'how long the token stays valid, e.g. 1h, 7d')
    .option('--json', 'print JSON')
    .action((opts: { config?: string; dir?: string; ttl?: string; json?: boolean }) => {
      const cfg = opts.config ? loadCollectorConfig(opts.config) : null;
      const dir = opts.dir ?? (cfg ? pkiDir(cfg) : DEFAULT_PKI_DIR);
      const ttl = opts.ttl ? parseDuration(opts.ttl) : (cfg?.enrollment.token_ttl ?? 86_400_000);
      if (ttl === undefined)
        throw new ConfigError(`--ttl: expected a duration like "1h" or "7d", got "${opts.ttl}"`);
      const { token: t, claims } = createToken(readTokenSecret(pkiPaths(dir).tokenSecret), ttl);
      const expires = new Date(claims.exp).toISOString();
      console.log(opts.json ? JSON.stringify({ token: t, expires }) : `${t}\n(one-time; expires ${expires})`);
    });

  const agent = cmd
    .command('agent')
    .description("manage enrolled agents (through a running collector's API)");
  const apiOpts = (c: Command) =>
    c
      .option('-c, --config <file>', 'collector YAML config (to find its HTTP listener)')
      .option('--url <url>', 'the collector HTTP listener', 'http://127.0.0.1:7700')
      .option('--api-key <key>', 'admin API key (default: $SEALTRAIL_API_KEY)');
  apiOpts(agent.command('list').description('list agents and their chain heads')).action(
    async (opts: ApiOpts) => {
      const r = (await api(opts, 'GET', '/agents')) as { agents: Record<string, unknown>[] };
      for (const a of r.agents) {
        const flags = [a.revoked ? 'REVOKED' : '', a.blocked ? 'BLOCKED' : ''].filter(Boolean).join(' ');
        console.log(
          `${a.agent_id}  ${String(a.hostname).padEnd(20)} chain ${a.chain_id ?? '-'} seq ${a.seq ?? '-'} ${flags}`,
        );
      }
    },
  );
  apiOpts(
    agent
      .command('revoke')
      .description('refuse all further streams of an agent')
      .argument('<id>', 'agent id'),
  )
    .option('--reason <text>', 'why, kept with the agent')
    .action(async (id: string, opts: ApiOpts & { reason?: string }) => {
      await api(opts, 'POST', `/agents/${id}/revoke`, { reason: opts.reason });
      console.log(`agent ${id} revoked`);
    });
  apiOpts(
    agent
      .command('accept-chain')
      .description(
        "after a fork: accept the agent's chain from the fork on (what the collector stored stays as evidence)",
      )
      .argument('<id>', 'agent id'),
  ).action(async (id: string, opts: ApiOpts) => {
    await api(opts, 'POST', `/agents/${id}/accept-chain`);
    console.log(`agent ${id}: chain accepted; its streams are allowed again`);
  });
  return cmd;
}

const DEFAULT_PKI_DIR = '/var/lib/sealtrail/collector/pki';

interface ApiOpts {
  config?: string;
  url: string;
  apiKey?: string;
}

/** Calls the collector's admin API; errors name what the collector said. */
async function api(opts: ApiOpts, method: string, path: string, body?: unknown): Promise<unknown> {
  const base = opts.config ? `http://${loadCollectorConfig(opts.config).http.listen}` : opts.url;
  const key = opts.apiKey ?? process.env.SEALTRAIL_API_KEY;
  if (!key)
    throw new ConfigError(
      'an admin API key is needed: --api-key KEY or SEALTRAIL_API_KEY (printed by `sealtrail-collector init`)',
    );
  let res: Response;
  try {
    res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  } catch (err) {
    throw new Error(`no collector answers at ${base}: ${(err as Error).cause ?? (err as Error).message}`);
  }
  const json = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new Error(`collector answered ${res.status}: ${json.error ?? res.statusText}`);
  return json;
}

export async function main(argv: string[]): Promise<void> {
  quietKnownWarnings();
  try {
    await program().parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    console.error(`sealtrail-collector: ${(err as Error).message}`);
    process.exit(1);
  }
}
