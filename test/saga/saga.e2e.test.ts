import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/metrics.js';
import { ErrorCodes } from '../../src/errors.js';
import { defineSaga } from '../../src/saga/model.js';
import { SagaOrchestrator } from '../../src/saga/orchestrator.js';
import { SagaEventTypes, type SagaOutcome } from '../../src/saga/types.js';
import { busTargets, startBus } from '../helpers/bus-targets.js';
import { waitFor } from '../helpers/wait-for.js';
import { commandPrefix, orderSaga, startParticipants, type OrderInput } from './fixtures/shop-saga.js';

/**
 * Sagas end to end on real buses: the shop's four-step order chain with in-process participants (SDK),
 * a refusal at step 3 compensated last step first, and an orchestrator SIGKILLed mid-run, replaced by
 * another replica that finishes every saga exactly once as the participants see it.
 */

const root = path.resolve(import.meta.dirname, '../..');
// The orchestrator uses only the Bus interface, whose conformance suite every adapter passes; these end-to-end
// runs cover embedded, Redis and Kafka (RabbitMQ passes them too, at about 50 s a run on this machine).
const targets = busTargets('saga').filter((t) => t.kind !== 'rabbitmq');

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`sagas on ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    async function setup(options: { delayMs?: number } = {}) {
      const tag = randomUUID().slice(0, 8);
      const env = await target.setup(tag);
      const saga = orderSaga(tag);
      cleanups.push(() => env.cleanup([`cutover.saga.order-${tag}`, commandPrefix(tag)]));
      const bus = await startBus(env.config, cleanups);
      const participants = await startParticipants(env.config, env.dataDir, saga, options);
      cleanups.push(() => participants.close());
      const replica = async (): Promise<SagaOrchestrator> => {
        const orchestrator = new SagaOrchestrator({ bus, sagas: [defineSaga(saga)] });
        await orchestrator.start();
        cleanups.push(() => orchestrator.close());
        return orchestrator;
      };
      return { tag, env, saga, bus, participants, replica };
    }

    it('completes a four-step saga with the last step reply as its result', async () => {
      const { participants, replica } = await setup();
      const orchestrator = await replica();
      const id = await orchestrator.begin('order', { order: 'o-1' } satisfies OrderInput);
      const outcome = await orchestrator.outcome('order', id, 30_000);
      expect(outcome).toMatchObject({ status: 'completed', sagaId: id, result: { status: 200, body: { tracking: `t-${id}` } } });
      expect((outcome as Extract<SagaOutcome, { status: 'completed' }>).results).toEqual({ reserve: { reservation: `r-${id}` }, fraud: { score: 0.1 }, pay: { payment: `p-${id}` }, ship: { tracking: `t-${id}` } });
      expect(participants.of(id)).toEqual(['reserve', 'fraud', 'pay', 'ship']);
      const applied = orchestrator.get('order', id)!.history.filter((h) => h.applied && h.type !== 'cutover.observation.bus').map((h) => h.type);
      expect(applied).toEqual([
        SagaEventTypes.started,
        ...Array.from({ length: 4 }, () => [SagaEventTypes.stepSent, SagaEventTypes.stepSucceeded]).flat(),
        SagaEventTypes.completed,
      ]);
    });

    it('compensates steps 2 and 1, in that order and once each, when step 3 refuses', async () => {
      const { participants, replica } = await setup();
      const orchestrator = await replica();
      const id = await orchestrator.begin('order', { order: 'o-2', fail: true } satisfies OrderInput);
      const outcome = await orchestrator.outcome('order', id, 30_000);
      expect(outcome).toMatchObject({ status: 'compensated', failure: { step: 'pay', code: ErrorCodes.SAGA_STEP_REFUSED, status: 402, body: { error: 'card declined' } } });
      await waitFor(() => participants.of(id).length >= 5, { what: 'compensations seen by the participants' });
      expect(participants.of(id)).toEqual(['reserve', 'fraud', 'pay', 'undo fraud', 'undo reserve']);
    });

    it('shares sagas between two live replicas of the group: every saga ends once, each step handled once', async () => {
      const count = 16;
      const { env, saga, participants } = await setup();
      const second = await startBus(env.config, cleanups);
      const registries = [createRegistry(), createRegistry()];
      const other = new SagaOrchestrator({ bus: second, sagas: [defineSaga(saga)], registry: registries[0]! });
      await other.start();
      cleanups.push(() => other.close());
      const first = new SagaOrchestrator({ bus: await startBus(env.config, cleanups), sagas: [defineSaga(saga)], registry: registries[1]! });
      await first.start();
      cleanups.push(() => first.close());
      const ids = await Promise.all(Array.from({ length: count }, (_, i) => (i % 2 ? first : other).begin('order', { order: `o-${i}`, fail: i % 4 === 0 })));
      const outcomes = await Promise.all(ids.map((id) => first.outcome('order', id, 60_000)));
      expect(outcomes.map((o) => o.status)).toEqual(ids.map((_, i) => (i % 4 === 0 ? 'compensated' : 'completed')));
      for (const [i, id] of ids.entries()) {
        expect(participants.of(id), id).toEqual(i % 4 === 0 ? ['reserve', 'fraud', 'pay', 'undo fraud', 'undo reserve'] : ['reserve', 'fraud', 'pay', 'ship']);
      }
      // Both replicas fold the same history.
      await waitFor(() => ids.every((id) => other.get('order', id)?.status === first.get('order', id)?.status), { what: 'the second replica caught up' });
      // A replica counts an end once the bus acknowledged its event, which may come after the other replica read it.
      const endsOf = () => Promise.all(registries.map(async (r) => (await r.getSingleMetric('cutover_saga_ended_total')!.get()).values.reduce((n, v) => n + v.value, 0)));
      const ended = await waitFor(async () => {
        const n = await endsOf();
        return n[0]! + n[1]! >= count ? n : undefined;
      }, { what: 'every end counted by the replica that decided it' });
      console.log(`two replicas on ${target.kind}: ${count} sagas; ends decided by each replica: ${ended.join(' + ')} (a saga both ended would count twice; its event applies once)`);
    });

    it('survives a SIGKILLed orchestrator: another replica finishes or compensates every saga, none twice, none lost', async () => {
      const count = 24;
      const { tag, env, saga, participants, replica } = await setup({ delayMs: 20 });
      const prefix = `s${tag}`;
      const child = spawnReplica(env.config, saga, prefix, count);
      cleanups.push(async () => child.kill('SIGKILL'));
      await child.began;
      // Mid-run: some sagas have moved on, others not yet.
      await waitFor(() => participants.effects.length >= count, { timeoutMs: 60_000, what: 'the first replica drove some steps' });
      child.kill('SIGKILL');
      await new Promise((r) => child.process.once('exit', r));
      const seenAtKill = participants.effects.length;

      const successor = await replica();
      const outcomes = await Promise.all(Array.from({ length: count }, (_, i) => successor.outcome('order', `${prefix}-${i}`, 120_000)));
      const counts = { completed: 0, compensated: 0, stuck: 0 };
      for (const [i, outcome] of outcomes.entries()) {
        counts[outcome.status]++;
        const id = `${prefix}-${i}`;
        // Compensations are published before the saga is marked compensated; their replies come first.
        const expected = i % 4 === 0 ? ['reserve', 'fraud', 'pay', 'undo fraud', 'undo reserve'] : ['reserve', 'fraud', 'pay', 'ship'];
        expect(outcome.status, id).toBe(i % 4 === 0 ? 'compensated' : 'completed');
        expect(participants.of(id), id).toEqual(expected);
      }
      const ids = participants.effects.map((e) => e.eventId);
      console.log(`saga crash on ${target.kind}: ${count} sagas, ${seenAtKill} step effects before the kill, ${participants.effects.length} in all; completed ${counts.completed}, compensated ${counts.compensated}, stuck ${counts.stuck}, duplicated effects ${ids.length - new Set(ids).size}`);
      expect(counts).toEqual({ completed: count - count / 4, compensated: count / 4, stuck: 0 });
      expect(new Set(ids).size).toBe(ids.length);
    });
  });
}

interface Replica {
  process: ChildProcess;
  began: Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

function spawnReplica(config: unknown, saga: unknown, prefix: string, count: number): Replica {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/saga/fixtures/orchestrator-process.ts'), JSON.stringify(config), JSON.stringify(saga), prefix, String(count)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const began = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`orchestrator replica exited early with ${code}`)));
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      if (buffer.includes('began\n')) resolve();
    });
  });
  began.catch(() => undefined);
  return { process: child, began, kill: (s) => child.kill(s) };
}
