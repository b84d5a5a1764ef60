/** `sealtrail-agent`: the only module that may exit the process. Exit codes: 0 ok, 1 runtime failure, 2 usage/config. */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError } from '@sealtrail/errors';
import { quietKnownWarnings } from '@sealtrail/telemetry';
import { Command, CommanderError } from 'commander';
import { Agent } from './agent.js';
import { loadAgentConfig } from './config.js';
import { enroll } from './enroll.js';
import { verifyJournal } from './journal/verify.js';
import { AGENT_VERSION } from './version.js';

function program(): Command {
  const cmd = new Command('sealtrail-agent')
    .description(
      'Collects audit events on this host, seals them into a hash chain and ships them to a collector',
    )
    .version(AGENT_VERSION)
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s) });

  cmd
    .command('run')
    .description('run the agent in the foreground')
    .requiredOption('-c, --config <file>', 'agent YAML config')
    .action(async (opts: { config: string }) => {
      const agent = new Agent(loadAgentConfig(opts.config), { configPath: opts.config });
      await agent.start();
      // SIGHUP: validate the file again and apply it; an invalid file keeps the running config.
      const hup = () => void agent.reload();
      process.on('SIGHUP', hup);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          agent.log.info({ signal }, 'stopping');
          process.off('SIGHUP', hup);
          agent.stop().then(resolve, resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  cmd
    .command('check-config')
    .description('validate a config file; exit 0 when valid, 2 naming each problem')
    .argument('<file>', 'agent YAML config')
    .action((file: string) => {
      const cfg = loadAgentConfig(file);
      console.log(`${file}: valid (${cfg.sources.length} source${cfg.sources.length === 1 ? '' : 's'})`);
    });

  cmd
    .command('verify')
    .description("verify a stopped agent's journal offline; exit 0 when intact, 1 naming the first bad seq")
    .requiredOption('-d, --data-dir <dir>', 'the agent data_dir')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { dataDir: string; json?: boolean }) => {
      const tty = process.stderr.isTTY && !opts.json;
      let lastLine = 0;
      const report = await verifyJournal(opts.dataDir, (n, total) => {
        if (tty) {
          const pct = total > 0 ? Math.min(100, Math.floor((n / total) * 100)) : 100;
          const bar = '#'.repeat(Math.floor(pct / 4)).padEnd(25, '.');
          process.stderr.write(`\rverifying [${bar}] ${pct}% ${n}/${total} records`);
        } else if (!opts.json && Date.now() - lastLine > 1000) {
          lastLine = Date.now();
          console.error(`verifying: ${n}/${total} records`);
        }
      });
      if (tty) process.stderr.write('\n');
      if (opts.json) console.log(JSON.stringify(report));
      else if (report.ok) {
        console.log(
          `journal intact: chain ${report.chain_id ?? '(none)'}, ${report.records} unshipped records verified, head ${report.head_seq ?? '-'}` +
            (report.quarantined ? `, ${report.quarantined} quarantined records kept` : ''),
        );
      } else
        console.log(
          `journal damaged at seq ${report.seq} of chain ${report.chain_id}: ${report.fault} (${report.detail})`,
        );
      if (!report.ok) process.exitCode = 1;
    });

  cmd
    .command('status')
    .description('show a running agent: chain head, acknowledged seq, backlog, disk use, last ack time')
    .option('-c, --config <file>', 'agent YAML config (to find its HTTP listener)')
    .option('--url <url>', 'the agent HTTP listener', 'http://127.0.0.1:7780')
    .option('--json', 'print the status as JSON')
    .action(async (opts: { config?: string; url: string; json?: boolean }) => {
      const base = opts.config ? `http://${loadAgentConfig(opts.config).http.listen}` : opts.url;
      let res: Response;
      try {
        res = await fetch(`${base}/v1/status`);
      } catch (err) {
        throw new Error(`no agent answers at ${base}: ${(err as Error).cause ?? (err as Error).message}`);
      }
      const st = (await res.json()) as Record<string, unknown>;
      if (opts.json) console.log(JSON.stringify(st));
      else for (const [k, v] of Object.entries(st)) console.log(`${k.padEnd(16)} ${v ?? '-'}`);
    });
  cmd
    .command('enroll')
    .description("register this agent's key with a collector using a one-time token")
    .requiredOption('--collector <host:port>', "the collector's gRPC address")
    .requiredOption('--token <token>', 'from `sealtrail-collector token create`')
    .option('--ca <file>', "the collector's CA certificate")
    .option(
      '--ca-fingerprint <sha256:hex>',
      "pin the collector's CA by its SHA-256 fingerprint (printed by `sealtrail-collector init`)",
    )
    .option('-c, --config <file>', 'agent YAML config (for its data_dir and name)')
    .option('-d, --data-dir <dir>', 'the agent data_dir', '/var/lib/sealtrail/agent')
    .action(
      async (opts: {
        collector: string;
        token: string;
        ca?: string;
        caFingerprint?: string;
        config?: string;
        dataDir: string;
      }) => {
        if (opts.ca && opts.caFingerprint) throw new ConfigError('give --ca or --ca-fingerprint, not both');
        const cfg = opts.config ? loadAgentConfig(opts.config) : null;
        let caPem: Buffer | undefined;
        if (opts.ca) {
          try {
            caPem = readFileSync(opts.ca);
          } catch (err) {
            throw new ConfigError(`--ca: cannot read ${opts.ca}: ${(err as Error).message}`);
          }
        }
        const r = await enroll({
          collector: opts.collector,
          token: opts.token,
          dataDir: cfg?.agent.data_dir ?? opts.dataDir,
          hostname: cfg?.agent.name ?? hostname(),
          ...(caPem ? { caPem } : {}),
          ...(opts.caFingerprint ? { caFingerprint: opts.caFingerprint } : {}),
        });
        console.log(
          `enrolled as agent ${r.agentId} with ${opts.collector}; collector CA stored in ${r.caFile}`,
        );
      },
    );

  return cmd;
}

export async function main(argv: string[]): Promise<void> {
  quietKnownWarnings();
  try {
    await program().parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    console.error(`sealtrail-agent: ${(err as Error).message}`);
    process.exit(1);
  }
}
