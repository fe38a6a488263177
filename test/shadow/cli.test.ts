import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from '../../src/bus/index.js';
import { silentLogger } from '../../src/logger.js';
import { shadowCommand } from '../../bin/commands/shadow.js';
import { runCli } from '../../bin/main.js';
import { waitFor } from '../helpers/wait-for.js';
import { startTestAgent } from './fixtures/agent.js';
import { simulateCall } from './fixtures/sidecar-sim.js';
import { collectParity } from '../helpers/parity.js';

describe('cutover shadow --config FILE', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function configFile(text: string): Promise<{ file: string; dir: string }> {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-shadow-cli-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(file, text.replaceAll('$DIR', dir));
    return { file, dir };
  }

  /** Runs `cutover shadow --config file` until `stop` aborts; resolves once it printed its start line (and nothing on stderr). */
  async function startShadow(file: string): Promise<{ out: string[]; stop: AbortController; exit: Promise<number> }> {
    const out: string[] = [];
    const err: string[] = [];
    const stop = new AbortController();
    const exit = shadowCommand(['--config', file], { out: (l) => out.push(l), err: (l) => err.push(l), signal: stop.signal }, { logger: silentLogger() });
    await waitFor(() => out.some((l) => l.startsWith('shadow:')) || err.length > 0, { what: 'the start line' });
    expect(err).toEqual([]);
    return { out, stop, exit };
  }

  it('runs delivery consumers and the comparator until stopped, then exits 0', async () => {
    const direct = await startTestAgent();
    const shadow = await startTestAgent();
    cleanups.push(() => direct.close(), () => shadow.close());
    const { file, dir } = await configFile(`
agent: inventory
upstream: ${direct.url}
admin: { auth: false }
bus: { kind: embedded, path: $DIR/bus.db, pollInterval: 10ms }
dataDir: $DIR
observationsTopic: cutover.observations.cli
shadow: { window: 5s, maxOpenPairs: 1000 }
flows:
  - name: inventory.reserve
    match: { method: POST, path: /reservations }
    topic: commands.agent.inventory.reserve
    key: body.sku
    mode: shadow
    shadow: { target: ${shadow.url}, timeout: 2s }
    compare: { ignore: [/body/lines], tolerance: { /body/price: 0.5 } }
`);
    const { out, stop, exit } = await startShadow(file);
    expect(out[0]).toBe('shadow: bus embedded; delivery cutover.shadow.inventory.reserve; comparator on');

    const bus = await createBus({ kind: 'embedded', path: path.join(dir, 'bus.db'), pollInterval: '10ms' });
    await bus.start();
    cleanups.push(() => bus.close());
    const records = await collectParity(bus, { group: 'test.reader' });
    const flow = { name: 'inventory.reserve', topic: 'commands.agent.inventory.reserve', observationsTopic: 'cutover.observations.cli' };
    const id = await simulateCall(bus, direct.url, flow, { method: 'POST', path: '/reservations', body: { sku: 'sku-3', qty: 1 }, key: 'sku-3' });
    await waitFor(() => records.length === 1, { what: 'the parity record' });
    expect(records[0]).toMatchObject({ correlationId: id, outcome: 'match', flow: 'inventory.reserve' });

    stop.abort();
    expect(await exit).toBe(0);
    expect(out.at(-1)).toBe('shadow: stopping');
  });

  it('runs the saga of a saga flow, and says so', async () => {
    const { file } = await configFile(`
agent: orders
admin: { auth: false }
bus: { kind: embedded, path: $DIR/bus.db, pollInterval: 10ms }
dataDir: $DIR
flows:
  - name: orders.place
    match: { method: POST, path: /orders }
    topic: commands.agent.orders.place
    saga: order
sagas:
  - name: order
    steps:
      - { name: reserve, command: commands.agent.inventory.reserve }
`);
    const { out, stop, exit } = await startShadow(file);
    expect(out[0]).toBe('shadow: bus embedded; delivery none; sagas orders.place → saga order; comparator on');
    stop.abort();
    expect(await exit).toBe(0);
  });

  it('exits 2 with every config problem and its path', async () => {
    const { file } = await configFile(`
agent: inventory
bus: { kind: embedded, path: $DIR/bus.db }
shadow: { window: soon }
flows:
  - name: inventory.reserve
    match: { method: POST, path: /reservations }
    topic: commands.agent.inventory.reserve
    shadow: { target: not-a-url, retries: 3 }
    compare: { ignore: [reservedAt], tolerance: { /body/price: "1 percent" } }
    noise: { sample: 2 }
`);
    const err: string[] = [];
    expect(await runCli(['shadow', '--config', file], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    const text = err.join('\n');
    expect(text).toMatch(/CUTOVER_CONFIG_INVALID/);
    for (const p of ['shadow.window', 'flows[0].shadow.target', 'flows[0].shadow.retries: unknown key', 'flows[0].compare.ignore[0]', 'flows[0].compare.tolerance./body/price', 'flows[0].noise.sample']) {
      expect(text).toContain(p);
    }
  });

  it('exits 2 naming the variable and its path when a key of encryption: is missing, and a key id given twice', async () => {
    const config = (keys: string) => `
agent: payments
admin: { auth: false }
bus: { kind: embedded, path: $DIR/bus.db }
encryption: { keyEnv: CLI_TEST_KEY, keyId: pii-2, fields: [/card/number], keys: ${keys} }
flows:
  - name: payments.charge
    match: { method: POST, path: /charges }
    topic: commands.agent.payments.charge
`;
    const env = { CLI_TEST_KEY: 'ab'.repeat(32) };
    const missing = await configFile(config('[{ keyId: pii-1, keyEnv: CLI_TEST_OLD_KEY }]'));
    const err: string[] = [];
    expect(await runCli(['shadow', '--config', missing.file], { out: () => undefined, err: (l) => err.push(l) }, { env })).toBe(2);
    expect(err.join('\n')).toMatch(/CUTOVER_CONFIG_INVALID.*encryption\.keys\[0\]\.keyEnv: environment variable CLI_TEST_OLD_KEY is not set/s);
    const twice = await configFile(config('[{ keyId: pii-2, keyEnv: CLI_TEST_KEY }]'));
    err.length = 0;
    expect(await runCli(['shadow', '--config', twice.file], { out: () => undefined, err: (l) => err.push(l) }, { env })).toBe(2);
    expect(err.join('\n')).toContain('encryption.keys[0].keyId: duplicate key id pii-2');
  });

  it('exits 2 on usage errors', async () => {
    const err: string[] = [];
    expect(await runCli(['shadow'], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    expect(await runCli(['shadow', '--config', 'x.yaml', '--only', 'both'], { out: () => undefined, err: (l) => err.push(l) })).toBe(2);
    expect(err.join('\n')).toMatch(/CUTOVER_USAGE/);
  });
});

describe('cutover shadow --metrics', () => {
  it('serves the shadow side metrics, with the admin token when the config has one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-shadow-metrics-'));
    const shadow = await startTestAgent();
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(file, `
agent: inventory
upstream: http://127.0.0.1:9
admin: { token: a-token-of-sixteen-chars }
bus: { kind: embedded, path: ${dir}/bus.db }
dataDir: ${dir}
flows:
  - name: inventory.reserve
    match: { method: POST, path: /reservations }
    topic: commands.agent.inventory.reserve
    mode: shadow
    shadow: { target: ${shadow.url} }
`);
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const out: string[] = [];
    const err: string[] = [];
    const stop = new AbortController();
    const exit = shadowCommand(['--config', file, '--metrics', `127.0.0.1:${port}`], { out: (l) => out.push(l), err: (l) => err.push(l), signal: stop.signal }, { logger: silentLogger() });
    try {
      await waitFor(() => out.length > 0 || err.length > 0, { what: 'the start line' });
      expect(err).toEqual([]);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer a-token-of-sixteen-chars' } });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain('cutover_shadow_deliveries_total');
      expect(text).toContain('cutover_comparator_open_pairs');
    } finally {
      stop.abort();
      expect(await exit).toBe(0);
      await shadow.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a non-loopback metrics address without a token (exit 2)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-shadow-metrics-'));
    const file = path.join(dir, 'cutover.yaml');
    await writeFile(file, `agent: inventory\nupstream: http://127.0.0.1:9\nadmin: { auth: false }\nbus: { kind: embedded, path: ${dir}/bus.db }\ndataDir: ${dir}\n`);
    const err: string[] = [];
    expect(await runCli(['shadow', '--config', file, '--metrics', '0.0.0.0:9464'], { out: () => undefined, err: (l) => err.push(l) }, { logger: silentLogger() })).toBe(2);
    expect(err.join('\n')).toContain('needs admin.token');
    await rm(dir, { recursive: true, force: true });
  });
});
