/** `sealtrail-agent`: the only module that may exit the process. Exit codes: 0 ok, 1 runtime failure, 2 usage/config. */
import { ConfigError } from '@sealtrail/errors';
import { Command, CommanderError } from 'commander';
import { Agent } from './agent.js';
import { loadAgentConfig } from './config.js';
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
      const report = await verifyJournal(opts.dataDir);
      if (opts.json) console.log(JSON.stringify(report));
      else if (report.ok) {
        console.log(
          `journal intact: chain ${report.chain_id ?? '(none)'}, ${report.records} unshipped records, head ${report.head_seq ?? '-'}`,
        );
      } else console.log(`journal damaged at seq ${report.seq}: ${report.fault} (${report.detail})`);
      if (!report.ok) process.exitCode = 1;
    });
  return cmd;
}

export async function main(argv: string[]): Promise<void> {
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
