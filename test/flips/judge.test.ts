import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { flipFlow } from '../../proxy/flip-control.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import type { Bus } from '../../src/bus/types.js';
import { trustSchema, type TrustConfigInput } from '../../src/config/identity.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { loadSigner, loadTrust, type Signer } from '../../src/events/signature.js';
import { ErrorCodes } from '../../src/errors.js';
import { createFlipFollower } from '../../src/flips/follower.js';
import type { FlipRejectionReason, JudgedFlip } from '../../src/flips/judge.js';
import { appendFlip, readFlipLog, readFlips } from '../../src/flips/log.js';
import type { FlowMode } from '../../src/flips/mode.js';
import { flipPolicy, whyNotOperator } from '../../src/flips/policy.js';
import type { FlipRecord, FlipReportSummary } from '../../src/flips/types.js';
import { MemoryBus } from '../helpers/memory-bus.js';
import { waitFor } from '../helpers/wait-for.js';
import { TEST_READINESS } from './fixtures.js';

/** The rules followers apply to the flip log: who signed it, which way it moves, and its evidence. */

const pair = () => generateKeyPairSync('ed25519', { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const keys = { alice: pair(), orders: pair(), mallory: pair() };
const FLOW = 'orders.create';

function trustConfig(overrides: Partial<TrustConfigInput> = {}) {
  return trustSchema.parse({
    agents: { alice: [{ keyId: 'a1', publicKey: keys.alice.publicKey }], orders: [{ keyId: 'o1', publicKey: keys.orders.publicKey }] },
    operators: ['alice'],
    ...overrides,
  });
}

const signer = (agent: keyof typeof keys, keyId: string): Signer => ({ agent, keyId, key: createPrivateKey(keys[agent].privateKey) });

function summary(verdict: FlipReportSummary['verdict']): FlipReportSummary {
  return { verdict, reasons: [], samples: 500, parity: 1, parityLowerBound: 0.99, missingRate: 0, busErrorRate: 0, busP99Ms: 9, basis: 'all', since: null, generatedAt: new Date().toISOString() };
}

function record(from: FlowMode, to: FlowMode, extra: Partial<FlipRecord> = {}): FlipRecord {
  return { flow: FLOW, from, to, reason: 'test', who: 'test', at: new Date().toISOString(), forced: false, report: null, ...extra };
}

interface Log {
  raw: MemoryBus;
  as(agent: keyof typeof keys | 'nobody'): Bus;
  reader(trust?: ReturnType<typeof trustConfig>): Bus;
}

function log(): Log {
  const raw = new MemoryBus();
  const trust = loadTrust(trustConfig());
  return {
    raw,
    as: (agent) => (agent === 'nobody' ? raw : signedBus(raw, { signer: signer(agent, agent === 'alice' ? 'a1' : agent === 'orders' ? 'o1' : 'm1'), trust })),
    reader: (config = trustConfig()) => signedBus(raw, { trust: loadTrust(config) }),
  };
}

async function judged(l: Log, config = trustConfig(), modes: ReadonlyMap<string, FlowMode> = new Map([[FLOW, 'shadow']])): Promise<Array<{ to: FlowMode; applied: boolean; reason: FlipRejectionReason | null; signer: string | null }>> {
  return (await readFlipLog(l.reader(config), { policy: flipPolicy(config), configModes: modes })).map((j) => ({ to: j.flip.to, applied: j.applied, reason: j.rejection?.reason ?? null, signer: j.signer }));
}

describe('trust.operators', () => {
  it('names agents of trust.agents; another name fails at trust.operators[i]', () => {
    expect(trustConfig().operators).toEqual(['alice']);
    const r = trustSchema.safeParse({ agents: { alice: [{ keyId: 'a1', publicKey: keys.alice.publicKey }] }, operators: ['alice', 'bob'] });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['operators.1', 'operator "bob" is not in trust.agents: list its public key there']]);
  });

  it('admin.operatorIdentity names its agent and exactly one key source; a bad key is reported under its own path', () => {
    const base = { agent: 'orders', flows: [] };
    const missing = cutoverConfigSchema.safeParse({ ...base, admin: { auth: false, operatorIdentity: { keyId: 'a1', privateKey: 'x' } } });
    expect(missing.error?.issues.map((i) => i.path.join('.'))).toEqual(['admin.operatorIdentity.agent']);
    const both = cutoverConfigSchema.safeParse({ ...base, admin: { auth: false, operatorIdentity: { agent: 'alice', keyId: 'a1', privateKey: 'x', privateKeyFile: '/k' } } });
    expect(both.error?.issues.map((i) => i.path.join('.'))).toEqual(['admin.operatorIdentity.privateKey']);
    expect(() => loadSigner({ agent: 'alice', keyId: 'a1', privateKey: 'not a key' }, 'alice', 'admin.operatorIdentity')).toThrow(/^admin\.operatorIdentity\.privateKey: not a PEM key/);
  });

  it('whyNotOperator: no key, an untrusted key, a non-operator; nothing to say without trust or with enforce off', () => {
    const policy = flipPolicy(trustConfig());
    expect(whyNotOperator(policy, signer('alice', 'a1'))).toBeUndefined();
    expect(whyNotOperator(policy, undefined)).toMatch(/no signing key/);
    expect(whyNotOperator(policy, signer('alice', 'a2'))).toMatch(/"a2" of "alice" is not in trust.agents/);
    expect(whyNotOperator(policy, signer('orders', 'o1'))).toMatch(/"orders" is not in trust.operators \(alice\)/);
    expect(whyNotOperator(undefined, undefined)).toBeUndefined();
    expect(whyNotOperator(flipPolicy(trustConfig({ enforce: false })), undefined)).toBeUndefined();
  });
});

describe('judging the flip log', () => {
  it('applies operator flips that carry their evidence; rejects unsigned, forged and non-operator records', async () => {
    const l = log();
    await appendFlip(l.as('alice'), record('shadow', 'canary:10', { report: summary('READY') }));
    await appendFlip(l.as('nobody'), record('canary:10', 'bus', { report: summary('READY') }));
    // A copy of alice's record, edited: the signature no longer covers it.
    const [signed] = l.raw.messages('cutover.control');
    await l.raw.publish('cutover.control', [{ key: FLOW, event: { ...signed!.event, id: 'edited', data: { ...(signed!.event.data as FlipRecord), to: 'bus' } } }]);
    await appendFlip(l.as('mallory'), record('canary:10', 'bus', { report: summary('READY') }));
    await appendFlip(l.as('orders'), record('canary:10', 'bus', { report: summary('READY') }));
    await appendFlip(l.as('alice'), record('canary:10', 'bus'));
    await appendFlip(l.as('alice'), record('canary:10', 'bus', { report: summary('NOT_READY') }));
    await appendFlip(l.as('alice'), record('canary:10', 'bus', { report: summary('INSUFFICIENT_DATA'), forced: true, reason: 'owner approved' }));
    await appendFlip(l.as('alice'), record('bus', 'direct'));
    await appendFlip(l.as('alice'), record('direct', 'shadow'));
    expect(await judged(l)).toEqual([
      { to: 'canary:10', applied: true, reason: null, signer: 'alice' },
      { to: 'bus', applied: false, reason: 'unsigned', signer: null },
      { to: 'bus', applied: false, reason: 'bad_signature', signer: null },
      { to: 'bus', applied: false, reason: 'unknown_agent', signer: null },
      { to: 'bus', applied: false, reason: 'not_operator', signer: 'orders' },
      { to: 'bus', applied: false, reason: 'no_evidence', signer: 'alice' },
      { to: 'bus', applied: false, reason: 'not_ready', signer: 'alice' },
      { to: 'bus', applied: true, reason: null, signer: 'alice' },
      { to: 'direct', applied: true, reason: null, signer: 'alice' },
      { to: 'shadow', applied: true, reason: null, signer: 'alice' },
    ]);
    expect((await readFlips(l.reader(), { policy: flipPolicy(trustConfig()), configModes: new Map([[FLOW, 'shadow']]) })).map((f) => f.to)).toEqual(['canary:10', 'bus', 'direct', 'shadow']);
  });

  it('a sidecar identity may write only automatic flips away from the bus, judged against the current mode, not the record\u2019s from', async () => {
    const l = log();
    await appendFlip(l.as('alice'), record('shadow', 'canary:50', { report: summary('READY') }));
    // Claims to come from bus, but the flow is in canary:50: canary:50 -> bus is towards the bus.
    await appendFlip(l.as('orders'), record('bus', 'bus', { automatic: true, report: summary('NOT_READY') }));
    await appendFlip(l.as('orders'), record('canary:50', 'canary:20', { automatic: true, forced: true }));
    await appendFlip(l.as('orders'), record('canary:50', 'shadow', { automatic: false }));
    await appendFlip(l.as('orders'), record('canary:50', 'canary:20', { automatic: true, report: summary('NOT_READY') }));
    await appendFlip(l.as('orders'), record('canary:20', 'shadow', { automatic: true, report: summary('NOT_READY') }));
    // A second replica's copy of the same rollback changes nothing and is not held against it.
    await appendFlip(l.as('orders'), record('canary:20', 'shadow', { automatic: true, report: summary('NOT_READY') }));
    // In shadow now: an "automatic" flip to a canary is not a rollback.
    await appendFlip(l.as('orders'), record('bus', 'canary:5', { automatic: true }));
    expect((await judged(l)).map((j) => [j.to, j.applied, j.reason])).toEqual([
      ['canary:50', true, null],
      ['bus', false, 'automatic_towards_bus'],
      ['canary:20', false, 'not_operator'],
      ['shadow', false, 'not_operator'],
      ['canary:20', true, null],
      ['shadow', true, null],
      ['shadow', true, null],
      ['canary:5', false, 'automatic_towards_bus'],
    ]);
  });

  it('without operators every trusted agent may flip (evidence still required); without a policy everything applies', async () => {
    const l = log();
    await appendFlip(l.as('orders'), record('shadow', 'canary:10', { report: summary('READY') }));
    await appendFlip(l.as('orders'), record('canary:10', 'bus'));
    await appendFlip(l.as('nobody'), record('canary:10', 'bus'));
    const open = trustSchema.parse({ ...trustConfig(), operators: undefined });
    expect((await judged(l, open)).map((j) => j.reason)).toEqual([null, 'no_evidence', 'unsigned']);
    expect((await readFlipLog(l.raw)).map((j) => [j.applied, j.rejection, j.signer])).toEqual([
      [true, null, null],
      [true, null, null],
      [true, null, null],
    ]);
  });

  it('with enforce off rejected records are judged, marked and still applied', async () => {
    const l = log();
    await appendFlip(l.as('nobody'), record('shadow', 'bus'));
    const config = trustConfig({ enforce: false });
    expect(await judged(l, config)).toEqual([{ to: 'bus', applied: true, reason: 'unsigned', signer: null }]);
  });

  it('the follower skips and reports rejected records of the flows it serves, and applies the rest', async () => {
    const l = log();
    const modes = new Map<string, FlowMode>([[FLOW, 'shadow']]);
    const table = { get: (name: string) => modes.get(name), setMode: (name: string, mode: FlowMode) => void modes.set(name, mode) };
    const rejected: JudgedFlip[] = [];
    const follower = createFlipFollower({ bus: l.reader(), flows: table, policy: flipPolicy(trustConfig()), configModes: new Map([[FLOW, 'shadow']]), onRejected: (j) => rejected.push(j), retryDelayMs: 10 });
    await follower.start();
    await appendFlip(l.as('nobody'), record('shadow', 'bus'));
    await appendFlip(l.as('nobody'), { ...record('shadow', 'bus'), flow: 'other.flow' });
    await appendFlip(l.as('alice'), record('shadow', 'canary:10', { report: summary('READY') }));
    await waitFor(() => modes.get(FLOW) === 'canary:10', { what: 'the operator flip applied' });
    await follower.close();
    expect(rejected.map((j) => [j.flip.flow, j.rejection?.reason])).toEqual([[FLOW, 'unsigned']]);
    expect([follower.applied, follower.rejected]).toEqual([1, 1]);
  });
});

describe('writing flips under a policy', () => {
  const flows = [{ name: FLOW, match: { method: 'POST' as const, path: '/orders' }, topic: 'commands.agent.orders.create', mode: 'bus' as const, schemaVersion: '1', rollback: 'auto' as const }];

  it('refuses with CUTOVER_FLIP_NOT_OPERATOR when followers would ignore the flip; signs with the operator key otherwise', async () => {
    const l = log();
    const policy = flipPolicy(trustConfig());
    const ctx = (agent: 'alice' | 'orders') => ({ bus: l.as('orders'), flows: flows as never, readiness: TEST_READINESS as never, policy, signer: signer(agent, agent === 'alice' ? 'a1' : 'o1') });
    await expect(flipFlow(ctx('orders'), { flow: FLOW, to: 'direct', reason: 'rollback' })).rejects.toMatchObject({ code: ErrorCodes.FLIP_NOT_OPERATOR, status: 403 });
    expect(l.raw.messages('cutover.control')).toHaveLength(0);
    // The same mode is a no-op for anyone: nothing to sign.
    await expect(flipFlow(ctx('orders'), { flow: FLOW, to: 'bus' })).resolves.toMatchObject({ action: 'noop' });
    // The bus signs as the sidecar (orders); the record is signed with alice's key all the same.
    await flipFlow(ctx('alice'), { flow: FLOW, to: 'direct', reason: 'rollback' });
    expect(await judged(l, trustConfig(), new Map([[FLOW, 'bus']]))).toEqual([{ to: 'direct', applied: true, reason: null, signer: 'alice' }]);
  });
});
