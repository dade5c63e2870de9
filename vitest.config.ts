import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Tests, the server code they import in-process and the SDK all run from source: the SDK package's
  // exports carry a `switchboard:source` condition that points at its src/ (tsconfig's customConditions
  // does the same for the typechecker), so one copy of the protocol module is loaded.
  resolve: { conditions: ['switchboard:source'] },
  ssr: { resolve: { conditions: ['switchboard:source'], externalConditions: ['switchboard:source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    // Two cores: run files two at a time; multi-instance files start several processes each.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    // The JSON report lets .ci/run print a plain "N passed, N failed" summary line.
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    pool: 'forks',
  },
});
