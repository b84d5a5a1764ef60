/**
 * grpc-js sets the TLS server name to the target host even when it is an IP
 * address, which makes Node print DEP0123 on every connection to a collector
 * addressed by IP. Certificate checks are unaffected (IP SANs are matched), so
 * that one warning is dropped; every other process warning is still printed.
 */
export function quietKnownWarnings(): void {
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code === 'DEP0123') return;
    process.stderr.write(`${w.name}: ${w.message}\n`);
  });
}
