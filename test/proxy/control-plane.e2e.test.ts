import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROLLBACK_WHO } from '../../proxy/rollback.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { openBus } from '../../src/bus/index.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import { ErrorCodes } from '../../src/errors.js';
import type { Signer } from '../../src/events/signature.js';
import type { CloudEvent } from '../../src/events/types.js';
import { appendFlip } from '../../src/flips/log.js';
import { FLIP_TOPIC, type FlipRecord, type FlipReportSummary } from '../../src/flips/types.js';
import { createRegistry } from '../../src/metrics.js';
import { buildEvent } from '../../src/events/cloudevent.js';
import { PARITY_EVENT_TYPE, PARITY_TOPIC } from '../../src/parity/types.js';
import { cli, records, TEST_READINESS } from '../flips/fixtures.js';
import { busTargets } from '../helpers/bus-targets.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * The control plane on the real brokers: two sidecar replicas with trust enforced and `alice` as the only
 * operator. Copied-and-edited and otherwise unauthorised flip records are ignored by both, counted, and
 * listed as REJECTED by `cutover history`; alice's flips (CLI and admin API) and the automatic rollback the
 * replicas write under their own key when the canary fails are applied by both.
 */

const targets = busTargets('control').filter((t) => t.kind !== 'embedded');
const TOKEN = 'control-plane-test-token-0123456789';

function pem() {
  return generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
}

function summary(verdict: FlipReportSummary['verdict']): FlipReportSummary {
  return { verdict, reasons: [], samples: 400, parity: 1, parityLowerBound: 0.99, missingRate: 0, busErrorRate: 0, busP99Ms: 8, basis: 'all', since: null, generatedAt: new Date().toISOString() };
}

async function adminFlip(sidecar: SidecarHandle, flow: string, body: Record<string, unknown>): Promise<{ status: number; json: { error?: { code: string; message: string }; action?: string } }> {
  const res = await fetch(`${sidecar.admin.url}/flows/${flow}/flip`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as never };
}

async function rejectedCounts(sidecar: SidecarHandle, flow: string): Promise<Record<string, number>> {
  const metric = await sidecar.registry.getSingleMetric('cutover_flips_rejected_total')!.get();
  return Object.fromEntries(metric.values.filter((v) => v.labels.flow === flow).map((v) => [String(v.labels.reason), v.value]));
}

for (const target of targets) {
  const suite = target.skip ? describe.skip : describe;
  suite(`control plane on ${target.kind}${target.skip ? ` (skipped: ${target.skip})` : ''}`, () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    });

    it('only operators move flows; forged records are ignored by every replica, counted and shown as rejected', { timeout: 180_000 }, async () => {
      const id = randomUUID().replace(/-/g, '').slice(0, 10);
      const env = await target.setup(id);
      const agent = `orders-${id}`;
      const flowName = `orders.create${id}`;
      const topic = `commands.agent.orders.create-${id}`;
      cleanups.push(() => env.cleanup([topic, `cutover.replies.${agent}.`]));

      const alice = pem();
      const sidecarKey = pem();
      const mallory = pem();
      const aliceSigner: Signer = { agent: 'alice', keyId: 'alice-1', key: createPrivateKey(alice.privateKey) };
      const sidecarSigner: Signer = { agent, keyId: 'sidecar-1', key: createPrivateKey(sidecarKey.privateKey) };
      const trust = { agents: { alice: [{ keyId: 'alice-1', publicKey: alice.publicKey }], [agent]: [{ keyId: 'sidecar-1', publicKey: sidecarKey.publicKey }] }, operators: ['alice'] };
      const flow = { name: flowName, match: { method: 'POST' as const, path: '/orders' }, topic, mode: 'shadow' as const, rollback: 'auto' as const };
      const start = (name: string, operator: boolean) =>
        startSidecar(
          {
            agent,
            listen: '127.0.0.1:0',
            upstream: 'http://127.0.0.1:9',
            admin: { listen: '127.0.0.1:0', tokens: [{ token: TOKEN, scopes: ['read', 'flip'] }], ...(operator ? { operatorIdentity: { agent: 'alice', keyId: 'alice-1', privateKey: alice.privateKey } } : {}) },
            bus: env.config,
            dataDir: path.join(env.dataDir, name),
            flows: [flow],
            identity: { keyId: 'sidecar-1', privateKey: sidecarKey.privateKey },
            trust,
            readiness: TEST_READINESS,
            log: { level: 'silent' },
          },
          { registry: createRegistry() },
        );
      const a = await start('a', true);
      cleanups.push(() => a.close());
      const b = await start('b', false);
      cleanups.push(() => b.close());
      const both = (mode: string) => a.flows.get(flowName)?.mode === mode && b.flows.get(flowName)?.mode === mode;

      // Alice, from her workstation: the CLI signs with her identity.
      const configFile = path.join(env.dir, 'alice.json');
      await writeFile(configFile, JSON.stringify({ agent: 'alice', admin: { auth: false }, bus: env.config, dataDir: env.dir, log: { level: 'warn' }, flows: [flow], identity: { keyId: 'alice-1', privateKey: alice.privateKey }, trust }));
      const flipped = await cli('flip', flowName, '--to', 'direct', '--reason', 'pause the dual write', '--who', 'alice', '--config', configFile);
      expect(flipped, flipped.err).toMatchObject({ code: 0 });
      await waitFor(() => both('direct'), { timeoutMs: 20_000, what: 'alice\u2019s flip applied by both replicas' });

      // The attacker and a stolen sidecar key.
      const raw = await openBus(env.config);
      cleanups.push(() => raw.close());
      const asSidecar = signedBus(raw, { signer: sidecarSigner });
      const asAlice = signedBus(raw, { signer: aliceSigner });
      const asMallory = signedBus(raw, { signer: { agent: 'mallory', keyId: 'm-1', key: createPrivateKey(mallory.privateKey) } });
      // A copy of alice's record, edited to the bus: once with her signature left on, once stripped.
      let original: CloudEvent | undefined;
      const stream = raw.read(FLIP_TOPIC, { from: 'start', follow: false });
      for await (const d of stream) if (d.event.cutoverflow === flowName) original = d.event;
      await stream.close();
      const edited: CloudEvent = { ...original!, id: randomUUID(), data: { ...(original!.data as FlipRecord), to: 'bus', report: summary('READY') } };
      const { signature: _s, signaturekeyid: _k, signatureagent: _a, ...stripped } = edited;
      await raw.publish(FLIP_TOPIC, [{ key: flowName, event: { ...stripped, id: randomUUID() } }]);
      await raw.publish(FLIP_TOPIC, [{ key: flowName, event: edited }]);
      const base = { flow: flowName, reason: 'forged', who: 'alice', at: new Date().toISOString(), forced: false };
      await appendFlip(asMallory, { ...base, from: 'direct', to: 'bus', report: summary('READY') });
      await appendFlip(asSidecar, { ...base, from: 'direct', to: 'bus', report: summary('READY') });
      await appendFlip(asSidecar, { ...base, from: 'bus', to: 'canary:50', automatic: true, report: summary('NOT_READY') });
      await appendFlip(asAlice, { ...base, from: 'shadow', to: 'bus', report: null });
      const expected = { unsigned: 1, bad_signature: 1, unknown_agent: 1, not_operator: 1, automatic_towards_bus: 1, no_evidence: 1 };
      await waitFor(async () => JSON.stringify(await rejectedCounts(a, flowName)) === JSON.stringify(expected) && JSON.stringify(await rejectedCounts(b, flowName)) === JSON.stringify(expected), {
        timeoutMs: 20_000,
        what: 'six rejected records counted by both replicas',
      });
      expect([a.flows.get(flowName)?.mode, b.flows.get(flowName)?.mode]).toEqual(['direct', 'direct']);

      // The admin API: replica b has no operator key and writes nothing; replica a signs as alice.
      const refused = await adminFlip(b, flowName, { to: 'shadow', reason: 'collect parity' });
      expect(refused.status).toBe(403);
      expect(refused.json.error?.code).toBe(ErrorCodes.FLIP_NOT_OPERATOR);
      expect((await adminFlip(a, flowName, { to: 'shadow', reason: 'collect parity' })).status).toBe(200);
      await waitFor(() => both('shadow'), { timeoutMs: 20_000, what: 'the admin API flip applied by both replicas' });
      const forced = await adminFlip(a, flowName, { to: 'canary:20', force: true, reason: 'partner deadline, owner approved' });
      expect(forced.status, JSON.stringify(forced.json)).toBe(200);
      await waitFor(() => both('canary:20'), { timeoutMs: 20_000, what: 'the forced canary applied by both replicas' });

      // The canary goes wrong: the replicas' rollback watch writes the automatic rollback under their own key.
      const asComparator = signedBus(raw, { signer: sidecarSigner });
      const failing = records(flowName, 40, { mismatches: 40, mode: 'canary:20' });
      await asComparator.publish(PARITY_TOPIC, failing.map((r) => ({ key: r.flow, event: buildEvent({ source: '/cutover/comparator', type: PARITY_EVENT_TYPE, data: r }) })));
      await waitFor(() => both('shadow'), { timeoutMs: 30_000, what: 'the automatic rollback applied by both replicas' });
      expect(await rejectedCounts(a, flowName)).toEqual(expected);

      const history = await cli('history', flowName, '--config', configFile);
      expect(history.code, history.err).toBe(0);
      const lines = history.out.split('\n');
      process.stderr.write(`control plane history on ${target.kind}:\n${history.out}\n`);
      expect(lines[0]).toMatch(/shadow -> direct {2}by alice {2}signed by alice {2}reason: pause the dual write$/);
      expect(lines.slice(1, 7).map((l) => /REJECTED \((\w+)\)/.exec(l)?.[1])).toEqual(['unsigned', 'bad_signature', 'unknown_agent', 'not_operator', 'automatic_towards_bus', 'no_evidence']);
      expect(lines[7]).toMatch(/direct -> shadow {2}by admin@orders-\w+ {2}signed by alice {2}reason: collect parity$/);
      expect(lines[8]).toMatch(/shadow -> canary:20 {2}by admin@orders-\w+ {2}signed by alice {2}FORCED {2}reason: partner deadline, owner approved/);
      // Replicas that judge at the same moment both write the rollback (same id, same effect): one or two lines.
      const rollbacks = lines.slice(9);
      expect(rollbacks.length === 1 || rollbacks.length === 2, history.out).toBe(true);
      for (const line of rollbacks) expect(line).toMatch(new RegExp(`canary:20 -> shadow {2}by ${ROLLBACK_WHO} {2}signed by ${agent} {2}AUTOMATIC {2}reason: automatic rollback: NOT_READY in canary:20`));
      expect(lines.filter((l) => l.includes('REJECTED'))).toHaveLength(6);
    });
  });
}
