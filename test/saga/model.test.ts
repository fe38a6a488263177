import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { ConfigError, ErrorCodes } from '../../src/errors.js';
import { defineSaga, isSuccess, retryDelay, sagaDefinition } from '../../src/saga/model.js';

const order = {
  name: 'order',
  steps: [
    { name: 'reserve', command: 'commands.agent.inventory.reserve', compensation: 'commands.agent.inventory.release' },
    { name: 'fraud', command: 'commands.agent.fraud.check' },
    { name: 'pay', command: 'commands.agent.payments.charge', compensation: 'commands.agent.payments.refund', success: { status: [201, '2xx'] } },
    { name: 'ship', command: 'commands.agent.logistics.ship', timeout: '30s', retry: { attempts: 10, backoff: '1s' } },
  ],
  pointOfNoReturn: 'pay',
};

function issuesOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(ErrorCodes.CONFIG_INVALID);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('saga model', () => {
  it('resolves defaults: topic, group, success, timeout, retry, point of no return', () => {
    const def = defineSaga(order);
    expect(def.topic).toBe('cutover.saga.order');
    expect(def.group).toBe('cutover.saga.order');
    expect(def.pointOfNoReturnIndex).toBe(2);
    expect(def.steps[0]!.success.status).toEqual(['2xx']);
    expect(def.steps[0]!.timeout).toBe(10_000);
    expect(def.steps[0]!.retry).toEqual({ attempts: 3, backoff: 500 });
    expect(def.steps[3]!.timeout).toBe(30_000);
    expect(def.takeoverAfter).toBe(5_000);
  });

  it('judges reply statuses by exact status and class', () => {
    const def = defineSaga({ ...order, steps: [{ name: 'a', command: 'commands.agent.a.do', success: { status: [409, '2xx'] } }], pointOfNoReturn: undefined });
    const step = def.steps[0]!;
    expect([200, 204, 299, 409].map((s) => isSuccess(step, s))).toEqual([true, true, true, true]);
    expect([199, 300, 402, 410, 500].map((s) => isSuccess(step, s))).toEqual([false, false, false, false, false]);
  });

  it('doubles the backoff per attempt, capped at a minute', () => {
    const step = defineSaga(order).steps[3]!;
    expect([1, 2, 3, 10].map((a) => retryDelay(step, a))).toEqual([1_000, 2_000, 4_000, 60_000]);
  });

  it('names each bad field in a typed error', () => {
    const issues = issuesOf(() =>
      defineSaga({
        name: 'Order',
        steps: [
          { name: 'reserve', command: 'inventory.reserve', timeout: 'soon' },
          { name: 'reserve', command: 'commands.agent.fraud.check', success: { status: [700, 'ok'] }, retry: { attempts: 0 } },
        ],
        pointOfNoReturn: 'ship',
      } as never),
    );
    const text = issues.join('\n');
    expect(text).toContain('name: expected lowercase letters');
    expect(text).toContain('steps[0].command: expected a topic under events., commands., metrics. or cutover.');
    expect(text).toContain('steps[0].timeout: expected a duration');
    expect(text).toContain('steps[1].name: duplicate step name (also steps[0])');
    expect(text).toContain('steps[1].success.status[0]: expected an HTTP status 100-599');
    expect(text).toContain('steps[1].retry.attempts: expected at least 1');
    expect(text).toContain('pointOfNoReturn: no step named "ship"');
  });

  it('rejects a saga without steps and unknown keys', () => {
    expect(issuesOf(() => defineSaga({ name: 'order', steps: [] }))).toEqual(['saga order: steps: expected at least one step']);
    expect(issuesOf(() => defineSaga({ ...order, pointOfNoReturn: undefined, steps: [{ ...order.steps[0]!, undo: 'x' }] } as never))).toEqual(['saga order: steps[0].undo: unknown key']);
  });

  it('reads sagas: from the config file, the same model as in code', () => {
    const config = parseConfigText(
      `agent: orders
admin: { auth: false }
sagas:
  - name: order
    topic: cutover.saga.orders
    steps:
      - { name: reserve, command: commands.agent.inventory.reserve, compensation: commands.agent.inventory.release, timeout: 2s }
      - { name: pay, command: commands.agent.payments.charge }
    pointOfNoReturn: pay
`,
      cutoverConfigSchema,
    );
    const def = sagaDefinition(config.sagas[0]!);
    expect(def.topic).toBe('cutover.saga.orders');
    expect(def.steps.map((s) => [s.name, s.timeout])).toEqual([
      ['reserve', 2000],
      ['pay', 10_000],
    ]);
    expect(() => parseConfigText(`agent: orders\nsagas:\n  - ${JSON.stringify(order)}\n  - ${JSON.stringify(order)}\n`, cutoverConfigSchema)).toThrow(/sagas\[1\]\.name: duplicate saga name \(also sagas\[0\]\)/);
  });
});
