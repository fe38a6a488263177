import type { SidecarHandle } from '../../proxy/sidecar.js';
import { READINESS_DEFAULTS } from '../../src/config/readiness.js';
import { samplesNeeded } from '../../reports/stats.js';
import type { Report } from '../../reports/types.js';
import type { AgentHandle } from '../shop/http.js';
import type { CalleeAgent, Shop } from '../shop/index.js';
import { DEMO_READINESS, type DemoFlow } from './config.js';
import type { TrafficStats } from './traffic.js';

/** The demo's narration: what it prints between the steps, from what the run and the report show. */

const fmt = new Intl.NumberFormat('en-US');
export const n = (x: number): string => fmt.format(x);
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Curls in the report point here first; {@link retarget} points each flow's at its own sidecar. */
export const PLACEHOLDER_BASE = 'http://cutover-demo.invalid';

/** Points each flow's example curls at the sidecar that serves the flow. */
export function retarget(report: Report, bases: ReadonlyMap<string, string>): Report {
  for (const f of report.flows) {
    const base = bases.get(f.flow);
    if (!base) continue;
    for (const d of f.topDiffs) for (const e of d.examples) if (e.curl) e.curl = e.curl.split(PLACEHOLDER_BASE).join(base);
  }
  return report;
}

/** The summary and the table of the text report (its per-flow sections are in report.txt). */
export function tableOf(text: string): string {
  const lines = text.split('\n');
  const end = lines.findIndex((l) => l.includes('\u2500\u2500 '));
  return (end < 0 ? lines : lines.slice(0, end)).join('\n').trimEnd();
}

export function printCriteria(out: (l: string) => void): void {
  const d = READINESS_DEFAULTS;
  const r = DEMO_READINESS;
  const pct = (x: number): string => `${+(x * 100).toFixed(3)}%`;
  out(`Readiness criteria for this demo: minSamples ${n(r.minSamples)} (default ${n(d.minSamples)}), minParityLowerBound ${r.minParityLowerBound} (default ${d.minParityLowerBound}),`);
  out(`  relaxed so the demo fits in two minutes: with the defaults, a flow where every call matches needs about ${n(samplesNeeded(1, d.minParityLowerBound) ?? 0)}`);
  out(`  compared calls before its 95% lower bound reaches ${pct(d.minParityLowerBound)} (${n(samplesNeeded(1, r.minParityLowerBound) ?? 0)} for ${pct(r.minParityLowerBound)}). Missing, DLQ and bus-error rates keep their`);
  out(`  defaults (at most ${pct(r.maxMissingRate)}, ${pct(r.maxDlqRate)}, ${pct(r.maxBusErrorRate)}).`);
  out('');
}

export function printTopology(out: (l: string) => void, shop: Shop, flows: readonly DemoFlow[], sidecarOf: ReadonlyMap<string, SidecarHandle>, shadowTargets: ReadonlyMap<CalleeAgent, AgentHandle>): void {
  const port = (url: string): string => `:${new URL(url).port}`;
  out('The shop (seven REST agents on 127.0.0.1) and the flows moving to the bus:');
  for (const f of flows) {
    const agent = shop.agents[f.agent];
    const sidecar = sidecarOf.get(f.flow.name)!;
    const replier =
      f.replier.kind === 'bus-native'
        ? `bus-native ${f.replier.agent} (SDK) replies`
        : f.replier.kind === 'delivery'
          ? `delivery to a shadow ${f.replier.agent} instance ${port(shadowTargets.get(f.replier.agent)!.url)} replies`
          : `the ${f.replier.saga} saga's outcome replies`;
    out(`  ${f.agent.padEnd(14)} ${port(agent.url).padEnd(7)} sidecar ${port(sidecar.data.url).padEnd(7)} ${f.flow.name.padEnd(18)} ${`${f.flow.match.method} ${f.flow.match.path}`.padEnd(19)} key ${f.flow.key ?? '-'}; ${replier}`);
  }
  out(`  ${'orders'.padEnd(14)} ${port(shop.agents.orders.url).padEnd(7)} calls pricing, inventory, fraud and logistics through their sidecars (and payments for checkouts)`);
  out(`  ${'recommendation'.padEnd(14)} ${port(shop.agents.recommendation.url).padEnd(7)} calls pricing and inventory through their sidecars`);
  out('');
}

export function summarizeTraffic(t: TrafficStats): string {
  const by = (kind: string): string =>
    [...t.statuses]
      .filter(([label]) => label.startsWith(`${kind} `))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([label, count]) => `${n(count)}× ${label.slice(kind.length + 1)}`)
      .join(', ');
  const checkouts = t.checkouts ? `, ${n(t.checkouts)} checkouts (${by('checkout')})` : '';
  return `Traffic: ${n(t.sent)} requests in ${secs(t.elapsedMs)} (${(t.sent / (t.elapsedMs / 1000)).toFixed(0)}/s): ${n(t.orders)} orders (${by('order')}), ${n(t.browses)} recommendation pages (${by('browse')})${checkouts}${t.failures ? `, ${n(t.failures)} without an answer` : ''}.`;
}

/** For each flow: why its verdict, and for the planted bugs, the cause the evidence points to. */
export function printWhy(out: (l: string) => void, report: Report, flows: readonly DemoFlow[]): void {
  out('Why:');
  for (const f of report.flows) {
    const demo = flows.find((d) => d.flow.name === f.flow);
    if (f.verdict.status === 'READY') {
      out(`  ${f.flow} READY: ${n(f.parity.compared)} calls compared, parity ${pctText(f.parity.value)} (95% lower bound ${pctText(f.parity.lowerBound)}), nothing missing.`);
      continue;
    }
    out(`  ${f.flow} ${f.verdict.status}:`);
    for (const r of f.verdict.reasons) out(`    ${r.criterion}: ${r.message}`);
    const top = f.topDiffs[0];
    if (top) {
      const e = top.examples[top.examples.length - 1];
      out(`    most differing field ${top.field} (${n(top.count)} calls)${e ? `, e.g. ${e.path}: direct ${JSON.stringify(e.direct)}, bus ${JSON.stringify(e.bus)}` : ''}`);
    }
    if (demo?.planted && f.verdict.status === 'NOT_READY') {
      out(`    planted in this demo: ${demo.planted.cause}.`);
      out(`    fix: ${demo.planted.fix}.`);
    }
  }
  if (report.flows.some((f) => f.verdict.status === 'INSUFFICIENT_DATA')) {
    out(`  Some flows have too few samples for a verdict: run with more requests (the default, 1,000, gives every flow at least ${DEMO_READINESS.minSamples}).`);
  }
  out('');
}

function pctText(value: number | null): string {
  return value === null ? '–' : `${(value * 100).toFixed(2)}%`;
}
