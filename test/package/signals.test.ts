import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { runSidecarUntilSigterm } from './sidecar-process.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');

/**
 * The way the README and docs/deployment.md tell users to run the CLI from a clone or in a container
 * (`node bin/cutover.js …`, node itself as the supervised process) must let SIGTERM reach the sidecar:
 * a wrapper that does not pass the signal on (npx, an npm script whose shell does not exec) leaves the
 * sidecar running without its parent instead of draining.
 */
describe('node bin/cutover.js sidecar under a supervisor', () => {
  beforeAll(async () => {
    // The launcher runs the compiled CLI: build it from the sources under test.
    await run('npm', ['run', 'build'], { cwd: root });
  }, 180_000);

  it('SIGTERM to the pid the supervisor started drains the sidecar, which exits 0 and leaves no process behind', async () => {
    const result = await runSidecarUntilSigterm(process.execPath, ['bin/cutover.js'], { cwd: root });
    expect(result.callStatus).toBe(201);
    expect(result, result.stderr).toMatchObject({ exitCode: 0, signal: null, leftovers: [] });
    expect(result.stdout).toContain('stopped (SIGTERM); 0 events left in the spool');
    expect(result.busEvents).toBe(1);
  }, 60_000);
});
