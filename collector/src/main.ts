/** `sealtrail-collector`: the only module that may exit the process. Exit codes: 0 ok, 1 runtime failure, 2 usage/config. */
import { ConfigError } from '@sealtrail/errors';
import { Command, CommanderError } from 'commander';
import { Collector } from './collector.js';
import { loadCollectorConfig } from './config.js';
import { formatDeadLetter, listDeadLetters, replayDeadLetters } from './exporters/deadletter.js';
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
  return cmd;
}

export async function main(argv: string[]): Promise<void> {
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
