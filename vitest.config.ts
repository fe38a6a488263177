import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

const root = path.dirname(fileURLToPath(import.meta.url));

/** A test that touches the real brokers gets them from the global setup, directly or through these helpers. */
const USES_BROKERS = /helpers\/(brokers|bus-targets)\.js|\bbusTargets\b|\binject\(/;

/**
 * Test files that need Redis or Kafka, found by what they import rather than listed by hand, so a new
 * broker test cannot slip into the broker-free run.
 */
function brokerTests(dir = 'test'): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const file = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return brokerTests(file);
    return file.endsWith('.test.ts') && USES_BROKERS.test(readFileSync(path.join(root, file), 'utf8')) ? [file] : [];
  });
}

/**
 * Everything that needs more than Node and this checkout: the brokers, the fault and cluster suites (brokers
 * and clusters of their own, killed and paused), end-to-end runs across processes,
 * a browser, and the packed package (build, npm pack, npm install from the registry).
 */
const integration = [...brokerTests(), 'test/faults/**/*.test.ts', 'test/cluster/**/*.test.ts', 'test/**/*.e2e.test.ts', 'test/**/*.browser.test.ts', 'test/package/**/*.test.ts'];

export default defineConfig({
  test: {
    // Integration suites share two real brokers on a 2-core machine: keep parallelism modest.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // On CI also a JSON summary, from which .ci/run prints one plain "N passed, N failed" line.
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.cache/vitest-results.json' }]] : ['default'],
    // `vitest run` runs both; `npm run test:unit` only the first, which starts no broker.
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, ...integration] } },
      { extends: true, test: { name: 'integration', include: integration, globalSetup: ['test/global-setup.ts'] } },
    ],
  },
});
