// The settings the installers act on, read from a config exactly as the binaries read it
// (same schema, defaults and ${ENV} substitution), one `key=value` line each:
//
//   runtime/bin/node share/installer/settings.mjs agent FILE
//     data_dir=…  address=…  insecure=true|false
//   runtime/bin/node share/installer/settings.mjs collector FILE
//     data_dir=…  pki_dir=…  insecure=true|false
//
// install.sh (Linux, macOS), install.ps1 and the .deb maintainer scripts use it to find where
// `sealtrail-collector init` writes the PKI and where `sealtrail-agent enroll` leaves
// enrollment.json. Exit 2 with the problem when the config is not valid.
const [component, file] = process.argv.slice(2);
if (!['agent', 'collector'].includes(component) || !file) {
  console.error('usage: settings.mjs agent|collector CONFIG');
  process.exit(2);
}
const lib = new URL(`../../lib/node_modules/@sealtrail/${component}/dist/config.js`, import.meta.url);
const config = await import(lib.href);
let lines;
try {
  if (component === 'agent') {
    const cfg = config.loadAgentConfig(file);
    lines = {
      data_dir: cfg.agent.data_dir,
      address: cfg.collector.address,
      insecure: cfg.collector.insecure,
    };
  } else {
    const cfg = config.loadCollectorConfig(file);
    lines = {
      data_dir: cfg.collector.data_dir,
      pki_dir: config.pkiDir(cfg),
      insecure: cfg.grpc.insecure,
    };
  }
} catch (err) {
  console.error(err.message);
  process.exit(2);
}
for (const [k, v] of Object.entries(lines)) console.log(`${k}=${v}`);
