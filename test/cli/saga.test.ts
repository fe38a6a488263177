import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { createBus, type Bus } from '../../src/bus/index.js';
import { defineSaga } from '../../src/saga/model.js';
import { beginSaga, SagaOrchestrator } from '../../src/saga/orchestrator.js';
import { readSagaTopic } from '../../src/saga/projection.js';
import { waitFor } from '../helpers/wait-for.js';
import { AgentBus } from '../../src/sdk/agent-bus.js';
import { serveSagaStep } from '../../src/sdk/saga-step.js';
import { orderSaga, startParticipants, type Participants } from '../saga/fixtures/shop-saga.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }, out, err };
}

/**
 * `cutover saga list|show` on an embedded bus holding a completed saga and a stuck one (its payment is
 * refused, and so is the release of its stock).
 */
describe('cutover saga', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-cli-saga-'));
  const bus = { kind: 'embedded' as const, path: path.join(dir, 'bus.db'), pollInterval: '10ms' };
  const saga = orderSaga('cli');
  saga.steps[0] = { ...saga.steps[0]!, compensation: 'commands.agent.ledger.release', retry: { attempts: 2, backoff: '10ms' } };
  const configFile = path.join(dir, 'cutover.yaml');
  writeFileSync(configFile, JSON.stringify({ agent: 'orders', admin: { auth: false }, log: { level: 'warn' }, bus, sagas: [saga] }));
  let raw: Bus;
  let participants: Participants;
  let orchestrator: SagaOrchestrator;
  let ledger: AgentBus;

  beforeAll(async () => {
    raw = await createBus(bus);
    await raw.start();
    participants = await startParticipants(bus, dir, orderSaga('cli'));
    ledger = await AgentBus.connect(bus, { agent: 'ledger', dataDir: dir });
    await serveSagaStep(ledger, { command: 'commands.agent.ledger.release', run: () => ({ status: 500, body: { error: 'ledger down' } }) });
    orchestrator = new SagaOrchestrator({ bus: raw, sagas: [defineSaga(saga)] });
    await orchestrator.start();
    await orchestrator.begin('order', { order: 'o-1' }, { id: 'done-1' });
    await orchestrator.begin('order', { order: 'o-2', fail: true }, { id: 'stuck-1' });
    await orchestrator.outcome('order', 'done-1', 20_000);
    await orchestrator.outcome('order', 'stuck-1', 20_000);
  }, 30_000);

  afterAll(async () => {
    await orchestrator?.close();
    await participants?.close();
    await ledger?.close();
    await raw?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists every saga with its status and exits 1 while one is stuck', async () => {
    const c = capture();
    expect(await runCli(['saga', 'list', '--config', configFile], c.io)).toBe(1);
    const text = c.out.join('\n');
    expect(text).toMatch(/order\s+done-1\s+completed/);
    expect(text).toMatch(/order\s+stuck-1\s+stuck\s+reserve \(compensate\)/);
    expect(text).toContain('CUTOVER_SAGA_STEP_REFUSED 500');
    expect(c.err.join('\n')).toContain('CUTOVER_SAGA_STUCK: 1 saga is stuck');
  });

  it('filters by status, as JSON', async () => {
    const c = capture();
    expect(await runCli(['saga', 'list', '--config', configFile, '--status', 'completed', '--json'], c.io)).toBe(0);
    const rows = JSON.parse(c.out.join('\n')) as Array<{ id: string; status: string }>;
    expect(rows.map((r) => [r.id, r.status])).toEqual([['done-1', 'completed']]);
  });

  it("shows one saga's state and history", async () => {
    const c = capture();
    expect(await runCli(['saga', 'show', 'stuck-1', '--config', configFile], c.io)).toBe(0);
    const text = c.out.join('\n');
    expect(text).toContain('saga order stuck-1: stuck at reserve (compensate)');
    expect(text).toMatch(/stuck: reserve compensate: CUTOVER_SAGA_STEP_REFUSED 500: compensation refused: reserve answered 500/);
    expect(text).toMatch(/step\.failed\s+pay forward send 1: pay forward: CUTOVER_SAGA_STEP_REFUSED 402/);
    expect(text).toMatch(/compensating\s+pay forward: CUTOVER_SAGA_STEP_REFUSED 402/);
    const json = capture();
    expect(await runCli(['saga', 'show', 'done-1', '--config', configFile, '--json'], json.io)).toBe(0);
    const shown = JSON.parse(json.out.join('\n')) as { outcome: { status: string; result: { body: unknown } }; history: Array<{ type: string }> };
    expect(shown.outcome).toMatchObject({ status: 'completed', result: { body: { tracking: 't-done-1' } } });
    expect(shown.history[0]!.type).toBe('cutover.saga.started');
  });

  it('answers an unknown id or saga name, and bad usage, with exit 2', async () => {
    const c = capture();
    expect(await runCli(['saga', 'show', 'nope', '--config', configFile], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('CUTOVER_SAGA_UNKNOWN: no saga with id "nope"');
    expect(await runCli(['saga', 'list', '--config', configFile, '--saga', 'invoice'], c.io)).toBe(2);
    expect(await runCli(['saga', 'list', '--config', configFile, '--status', 'gone'], c.io)).toBe(2);
    expect(await runCli(['saga', 'remove', '--config', configFile], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('CUTOVER_USAGE');
  });
});

describe('cutover saga run', () => {
  it('drives sagas begun elsewhere until stopped, then exits 0', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-cli-saga-run-'));
    const bus = { kind: 'embedded' as const, path: path.join(dir, 'bus.db'), pollInterval: '10ms' };
    const saga = orderSaga('run');
    const configFile = path.join(dir, 'cutover.yaml');
    writeFileSync(configFile, JSON.stringify({ agent: 'orders', admin: { auth: false }, log: { level: 'warn' }, bus, sagas: [saga] }));
    const raw = await createBus(bus);
    await raw.start();
    const participants = await startParticipants(bus, dir, saga);
    const stop = new AbortController();
    const c = capture();
    const exit = runCli(['saga', 'run', '--config', configFile], { ...c.io, signal: stop.signal });
    try {
      await waitFor(() => c.out.some((l) => l.startsWith('saga: bus embedded; driving order (cutover.saga.order-run)')), { what: 'the replica started' });
      const id = await beginSaga(raw, defineSaga(saga), { order: 'o-9' });
      const done = await waitFor(async () => (await readSagaTopic(raw, defineSaga(saga))).sagas.get(id)?.status === 'completed', { timeoutMs: 20_000, what: 'the saga completed' });
      expect(done).toBe(true);
      expect(participants.of(id)).toEqual(['reserve', 'fraud', 'pay', 'ship']);
    } finally {
      stop.abort();
      expect(await exit).toBe(0);
      await participants.close();
      await raw.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(c.out.at(-1)).toBe('saga: stopping');
  });

  it('checks --metrics before starting', async () => {
    const c = capture();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-cli-saga-run-'));
    const configFile = path.join(dir, 'cutover.yaml');
    writeFileSync(configFile, JSON.stringify({ agent: 'orders', admin: { auth: false }, bus: { kind: 'embedded', path: path.join(dir, 'bus.db') }, sagas: [orderSaga('run')] }));
    expect(await runCli(['saga', 'run', '--config', configFile, '--metrics', 'nope'], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('--metrics takes HOST:PORT');
    rmSync(dir, { recursive: true, force: true });
  });
});
