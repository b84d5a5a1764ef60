import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Unit tests import workspace packages from their TypeScript sources (the
  // `sealtrail-source` export condition); end-to-end tests run the compiled binaries.
  resolve: { conditions: ['sealtrail-source'] },
  ssr: { resolve: { conditions: ['sealtrail-source'] } },
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
