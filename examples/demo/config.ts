import path from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import type { z } from 'zod';
import { readinessSchema, type ReadinessConfig } from '../../src/config/readiness.js';
import type { BusConfigInput } from '../../src/config/bus.js';
import { sagaSchema, type SagaConfig, type SagaConfigInput } from '../../src/config/saga.js';
import { configFlowSchema, cutoverConfigSchema } from '../../src/config/schema.js';
import { checkoutTopic } from '../shop/bus-native/checkout.js';
import { CHECKOUT_CHAIN } from '../shop/checkout-rules.js';
import type { CalleeAgent } from '../shop/index.js';
import type { Fixable } from './options.js';

/**
 * What the demo configures, in the terms of a cutover config file: each flow as it would sit under
 * `flows:` (validated by the same schema), and the `readiness:` criteria the report applies.
 */

/** A flow as the config file declares it: routing, key, mode, shadow, compare, readiness. */
export type ConfigFlow = z.infer<typeof configFlowSchema>;

/**
 * The demo's `readiness:` (top level). Relaxed from the defaults so the demo finishes in under two
 * minutes: with the defaults (minSamples 1,000, minParityLowerBound 0.999) a flow where every call
 * matches needs about 3,838 compared calls before its 95% lower bound reaches 99.9%. With 0.98 it needs
 * 189, so every flow gets at least 200. The other criteria keep their defaults (missing, DLQ and bus
 * error rates at most 0.1%).
 */
export const DEMO_READINESS_INPUT = { minSamples: 200, minParityLowerBound: 0.98 } as const;
export const DEMO_READINESS: ReadinessConfig = readinessSchema.parse(DEMO_READINESS_INPUT);

/** Who answers a flow's call events on the bus: a bus-native agent, a shadow instance, or a saga of `sagas:`. */
export type Replier = { kind: 'bus-native'; agent: CalleeAgent } | { kind: 'delivery'; agent: CalleeAgent } | { kind: 'saga'; saga: string };

/** A flow as written under `flows:` in a config file (before defaults). */
export type ConfigFlowInput = z.input<typeof configFlowSchema>;

/** One migrating flow of the demo. */
export interface DemoFlow {
  /** The agent whose sidecar dual-writes the flow. */
  agent: CalleeAgent | 'orders';
  /** The flow's config; for a delivery flow `shadow.target` is filled in once the shadow instance listens. */
  flow: ConfigFlow;
  /** The same as written in a config file (what the demo's cutover.yaml shows). */
  input: ConfigFlowInput;
  replier: Replier;
  /** What the demo planted in this flow, for its narration; undefined for a faithful port. */
  planted?: { cause: string; fix: string };
}

/**
 * The four flows, in report order. `fixes` removes planted bugs (`--fix`): `inventory.reserve` is then
 * keyed by SKU (the bus-native pricing's rounding is fixed where that agent starts).
 */
export function demoFlows(fixes: ReadonlySet<Fixable>): DemoFlow[] {
  const flow = (input: ConfigFlowInput): { flow: ConfigFlow; input: ConfigFlowInput } => ({ flow: configFlowSchema.parse(input), input });
  return [
    {
      agent: 'pricing',
      // No tolerance on prices: one cent is a real difference (a tolerance of 0.01 would hide the bug).
      ...flow({ name: 'pricing.quote', match: { method: 'POST', path: '/quotes' }, topic: 'commands.agent.pricing.quote', key: 'body.customerId', mode: 'shadow' }),
      replier: { kind: 'bus-native', agent: 'pricing' },
      ...(fixes.has('pricing.quote')
        ? {}
        : {
            planted: {
              cause: 'the bus-native pricing rounds discounted prices half up (Math.round); the REST agent rounds half to even, so some discounted lines cost a cent more on the bus',
              fix: 'round half to even in examples/shop/bus-native/pricing.ts (see it pass: --fix pricing.quote)',
            },
          }),
    },
    {
      agent: 'inventory',
      ...flow({
        name: 'inventory.reserve',
        match: { method: 'POST', path: '/reservations' },
        topic: 'commands.agent.inventory.reserve',
        // Keyed by order: reservations of one SKU from different orders carry no order on the bus.
        key: fixes.has('inventory.reserve') ? 'body.sku' : 'body.orderId',
        mode: 'shadow',
      }),
      replier: { kind: 'bus-native', agent: 'inventory' },
      ...(fixes.has('inventory.reserve')
        ? {}
        : {
            planted: {
              cause: 'the flow is keyed by body.orderId, so the bus keeps no order between two orders reserving the same SKU; the bus-native inventory applies them in another order and tells callers a different stock remaining',
              fix: 'key the flow by body.sku, so one SKU\u2019s reservations stay in order (see it pass: --fix inventory.reserve)',
            },
          }),
    },
    {
      agent: 'fraud',
      ...flow({ name: 'fraud.check', match: { method: 'POST', path: '/checks' }, topic: 'commands.agent.fraud.check', key: 'body.customerId', mode: 'shadow' }),
      replier: { kind: 'bus-native', agent: 'fraud' },
    },
    {
      agent: 'logistics',
      ...flow({
        name: 'logistics.ship',
        match: { method: 'POST', path: '/shipments' },
        topic: 'commands.agent.logistics.ship',
        key: 'body.orderId',
        mode: 'shadow',
        // The target (a second logistics instance) is filled in when it listens.
        shadow: { timeout: '5s' },
        // The booking time differs between the two instances by nature: not a difference that matters.
        compare: { ignore: ['/body/createdAt'] },
      }),
      replier: { kind: 'delivery', agent: 'logistics' },
    },
  ];
}

// The checkout chain as a saga.

/**
 * The `checkout` saga (`sagas:`): the chain of `POST /checkout` step by step — hold the lines (undone by
 * releasing the hold), screen for fraud, charge (undone by a refund), ship. Once the parcel is booked the
 * saga only goes forward.
 */
export const CHECKOUT_SAGA_INPUT: SagaConfigInput = {
  name: 'checkout',
  steps: CHECKOUT_CHAIN.map((link) => ({
    name: link.step,
    command: checkoutTopic(link.agent, link.action),
    ...(link.undo ? { compensation: checkoutTopic(link.agent, link.undo.action) } : {}),
    timeout: '5s',
  })),
  pointOfNoReturn: 'ship',
};
export const CHECKOUT_SAGA: SagaConfig = sagaSchema.parse(CHECKOUT_SAGA_INPUT);

/**
 * The checkout flow: the orders sidecar dual-writes each `POST /checkout`, and the shadow side answers it
 * with the `checkout` saga's outcome (in shadow: the participants compute, the chain acted), compared with
 * the chain's answer.
 */
export function checkoutFlow(): DemoFlow {
  const input: ConfigFlowInput = {
    name: 'orders.checkout',
    match: { method: 'POST', path: '/checkout' },
    topic: 'commands.agent.orders.checkout',
    key: 'body.checkoutId',
    mode: 'shadow',
    saga: 'checkout',
    // The booking time of the parcel differs between the chain's logistics and the saga's.
    compare: { ignore: ['/body/createdAt'] },
  };
  return { agent: 'orders', flow: configFlowSchema.parse(input), input, replier: { kind: 'saga', saga: 'checkout' } };
}

/**
 * The run's config as a cutover config file, so that the CLI can look at the running demo (`cutover status`,
 * `history`, `flip`, `report`). Validated with the CLI's own schema before it is written.
 */
export function demoConfigYaml(bus: BusConfigInput, dataDir: string, flows: readonly DemoFlow[], outDir: string, rpcFlows: readonly ConfigFlowInput[] = []): string {
  const config = {
    agent: 'shop',
    admin: { listen: '127.0.0.1:15001', auth: false },
    bus,
    dataDir,
    readiness: DEMO_READINESS_INPUT,
    flows: [...flows.map((f) => f.input), ...rpcFlows],
    ...(flows.some((f) => f.replier.kind === 'saga') ? { sagas: [CHECKOUT_SAGA_INPUT] } : {}),
  };
  cutoverConfigSchema.parse(config);
  const file = path.join(outDir, 'cutover.yaml');
  const header = [
    'The config of one cutover demo run, for the CLI while the demo serves (npm start without --no-wait):',
    `  npx cutover status --config ${file}`,
    `  npx cutover history logistics.ship --config ${file}`,
    `  npx cutover flip inventory.reserve --to bus --config ${file}      (refused: NOT_READY)`,
    `  npx cutover report --config ${file} --format md`,
    'Its bus lives only while the demo runs (the SQLite file or Redis prefix is removed at exit).',
    'The demo runs one sidecar per agent; each would have a file like this with its own agent, listen and flows.',
  ];
  return `${header.map((l) => `# ${l}`.trimEnd()).join('\n')}\n${stringifyYaml(config, { lineWidth: 0 })}`;
}
