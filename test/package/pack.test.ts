import { execFile } from 'node:child_process';
import { cpSync, readFileSync, symlinkSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSidecarUntilSigterm } from './sidecar-process.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const tsc = path.join(root, 'node_modules/typescript/bin/tsc');

/** What the package is built from: the checkout without its installs, builds, tests and caches. */
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', 'test', '.data', '.cache', 'coverage', 'cutover-demo-report']);

const versionOf = (dir: string): string => (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * The package as users get it: `npm pack` of a clean copy of the checkout (so the build under test is the
 * tarball's own and the checkout's dist/ is left alone), installed with `npm install <tarball>` into a new
 * project that compiles a TypeScript agent against the published types and runs it.
 */
describe('the packed package', () => {
  let work: string;
  let app: string;
  let files: string[];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'cutover-pack-'));
    const source = path.join(work, 'source');
    cpSync(root, source, { recursive: true, filter: (from) => path.dirname(from) !== root || !NOT_COPIED.has(path.basename(from)) });
    symlinkSync(path.join(root, 'node_modules'), path.join(source, 'node_modules'));
    // npm pack runs `prepare`, which builds dist/ in the copy.
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: source, maxBuffer: 16 * 1024 * 1024 });
    const [packed] = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = packed!.files.map((f) => f.path);

    app = path.join(work, 'app');
    await mkdir(app);
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'cutover-consumer', private: true, type: 'module' }));
    // --ignore-scripts: compiling better-sqlite3 from source takes minutes; the binary of the identical
    // version in our own install is copied in below instead (what its install script would produce).
    await run('npm', ['install', path.join(work, packed!.filename), '@types/node@20', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], { cwd: app, maxBuffer: 16 * 1024 * 1024 });
    const ours = path.join(root, 'node_modules/better-sqlite3');
    const theirs = path.join(app, 'node_modules/better-sqlite3');
    if (versionOf(ours) === versionOf(theirs)) {
      await mkdir(path.join(theirs, 'build/Release'), { recursive: true });
      await copyFile(path.join(ours, 'build/Release/better_sqlite3.node'), path.join(theirs, 'build/Release/better_sqlite3.node'));
    } else {
      await run('npm', ['rebuild', 'better-sqlite3'], { cwd: app, maxBuffer: 16 * 1024 * 1024 });
    }
  }, 600_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('holds the compiled code with its declarations, the launcher, docs and README, and no tests, sources or maps', () => {
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'bin/cutover.js', 'dist/proxy/index.js', 'dist/proxy/index.d.ts', 'dist/src/sdk/index.js', 'dist/src/sdk/index.d.ts', 'docs/sdk.md']));
    const unwanted = files.filter((f) => /^(test|src|proxy|shadow|reports|examples|bench|\.cache|\.data|node_modules)\/|^dist\/(examples|test)\/|\.map$|\.ts$(?<!\.d\.ts)/.test(f));
    expect(unwanted).toEqual([]);
  });

  it('a TypeScript agent importing cutover and cutover/sdk compiles with NodeNext and answers a command on an embedded bus', async () => {
    await copyFile(path.join(import.meta.dirname, 'fixtures/agent.ts'), path.join(app, 'agent.ts'));
    // Strict, and without skipLibCheck: the published declarations are checked as a consumer's compiler sees them.
    const compilerOptions = { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, types: ['node'], outDir: 'out' };
    await writeFile(path.join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['agent.ts'] }));
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((err: { stdout?: string }) => {
      throw new Error(`tsc failed:\n${err.stdout}`);
    });

    const data = path.join(app, 'data');
    await mkdir(data);
    const { stdout } = await run(process.execPath, ['out/agent.js', data], { cwd: app, timeout: 60_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(result).toMatchObject({
      status: 201,
      handled: 1,
      reply: { status: 201, body: { sku: 'SKU-1', reserved: true } },
      samples: 1,
      heading: 'cutover readiness report',
      configError: 'CUTOVER_CONFIG_INVALID',
    });
    expect(await readdir(data)).toContain('bus.db');
  }, 120_000);

  it('the installed bin prints its usage', async () => {
    const { stdout } = await run(path.join(app, 'node_modules/.bin/cutover'), ['--help'], { cwd: app });
    expect(stdout).toContain('usage: cutover <command>');
  });

  it('the installed bin runs the sidecar so that SIGTERM drains it and nothing is left behind', async () => {
    const result = await runSidecarUntilSigterm(path.join(app, 'node_modules/.bin/cutover'), [], { cwd: app });
    expect(result, result.stderr).toMatchObject({ callStatus: 201, exitCode: 0, signal: null, leftovers: [], busEvents: 1 });
    expect(result.stdout).toContain('stopped (SIGTERM); 0 events left in the spool');
  }, 60_000);
});
