import type { SidecarHandle } from '../../proxy/sidecar.js';
import { discoverFlows } from '../../src/discovery/propose.js';
import { discoveryTable } from '../../src/discovery/table.js';
import type { Bus } from '../../src/bus/types.js';
import type { Shop } from '../shop/index.js';
import { resetFlowModes, waitForMode } from './flip-step.js';
import { n } from './narrate.js';
import { askQuestions, planQuestions } from './questions.js';
import { driveTraffic, planTraffic } from './traffic.js';

/**
 * The demo's first phase, as a migration starts: the sidecars forward with every flow still `direct` and
 * `observe:` on, a little traffic passes, the discovery table (what `cutover discover` prints) shows
 * what they saw, and then the flows are flipped to their configured mode (shadow) so the comparison starts.
 */

/** Shop requests planned before shadowing starts (the browsing third is sent): enough for keys to recur, few enough to cost a second. */
export const DISCOVERY_REQUESTS = 90;
export const DISCOVERY_QUESTIONS = 12;

/** The sidecar's view of a flow during discovery: configured, but only forwarded and observed. */
export const observing = <F extends { mode?: string }>(flow: F): F => ({ ...flow, mode: 'direct' });

export interface DiscoveryPhase {
  bus: Bus;
  shop: Shop;
  /** Customer service's URL: a few questions reach the JSON-RPC agents too. */
  customerService: string;
  /** Every flow, with the mode it is flipped to once discovery is done. */
  flows: ReadonlyArray<{ name: string; mode: string }>;
  sidecars: readonly SidecarHandle[];
  sidecarOf: ReadonlyMap<string, SidecarHandle>;
  seed: number;
  concurrency: number;
  out: (line: string) => void;
  signal: AbortSignal;
  who: string;
}

export async function runDiscoveryPhase(p: DiscoveryPhase): Promise<void> {
  const { out } = p;
  // Another seed than the measured traffic's: these calls are not in the report. Browsing only: an order
  // would reserve stock that the bus-native inventory, consuming only once shadowing starts, never sees.
  const plan = planTraffic(p.seed + 2, DISCOVERY_REQUESTS).filter((r) => r.kind === 'browse');
  const questions = planQuestions(p.seed + 2, DISCOVERY_QUESTIONS);
  out(`Discovery: ${n(plan.length)} storefront pages and ${n(questions.length)} questions to customer service pass with every flow direct; the sidecars observe them (observe:)...`);
  await Promise.all([
    driveTraffic(plan, { ordersUrl: p.shop.agents.orders.url, recommendationUrl: p.shop.agents.recommendation.url, concurrency: p.concurrency, signal: p.signal }),
    askQuestions(p.customerService, questions, 2, p.signal),
  ]);
  const summaries = p.sidecars.map((s) => s.discovery()).filter((s) => s !== undefined);
  out('What the sidecars saw (cutover discover prints the same from their data dirs):');
  for (const line of discoveryTable(discoverFlows(summaries)).split('\n')) out(`  ${line}`.trimEnd());
  out('');
  // direct -> shadow is not gated: shadowing only observes, the direct path stays authoritative.
  const flipped = await resetFlowModes({
    bus: p.bus,
    flows: p.flows,
    who: p.who,
    reason: 'cutover demo: discovery done, shadowing starts',
    unflipped: 'direct',
  });
  const applied = await Promise.all(flipped.map((flow) => waitForMode(p.sidecarOf.get(flow), flow, p.flows.find((f) => f.name === flow)!.mode, 5_000)));
  const late = flipped.filter((_, i) => !applied[i]);
  out(`Flipped ${flipped.join(', ')} direct -> shadow${late.length ? ` (not applied yet by ${late.join(', ')})` : ''}: the sidecars dual-write them from now on.`);
  out('');
}
