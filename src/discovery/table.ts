import type { DiscoveredFlow } from './propose.js';

const ms = (v: number | undefined): string => (v === undefined ? '-' : v < 10 ? v.toFixed(1) : Math.round(v).toString());

function pad(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

/**
 * The discovery table, one line per candidate flow (proposed ones in their suggested order first), then
 * the reason for each proposed flow's place. Plain text, no colour: fit for a terminal or a log.
 */
export function discoveryTable(rows: readonly DiscoveredFlow[]): string {
  if (rows.length === 0) return 'no calls observed yet (is observe: set in the sidecar config, and has traffic passed?)';
  const sorted = [...rows].sort((a, b) => (a.order ?? Infinity) - (b.order ?? Infinity) || b.candidate.calls - a.candidate.calls);
  const lines: string[][] = [['#', 'agent', 'method', 'path', 'json-rpc', 'calls', 'err%', 'p50ms', 'p95ms', 'safe', 'key', 'flow']];
  for (const r of sorted) {
    const c = r.candidate;
    lines.push([
      r.order?.toString() ?? '-',
      r.agent,
      c.method,
      c.template,
      `${r.rpcMethods?.join(',') ?? c.rpc ?? ''}${c.tool === undefined ? '' : ` ${c.tool}`}`,
      c.calls.toString(),
      (r.analysis.errorRate * 100).toFixed(1),
      ms(r.analysis.p50),
      ms(r.analysis.p95),
      r.analysis.safety.level,
      r.proposed?.key ?? r.analysis.keys[0]?.key ?? '-',
      r.configured !== undefined ? `${r.configured} (configured)` : r.proposed ? `${r.proposed.name} -> ${r.proposed.topic}` : `- (${r.skipped ?? 'not proposed'})`,
    ]);
  }
  const out = pad(lines);
  const reasons = sorted.filter((r) => r.order !== undefined).map((r) => `  ${r.order}. ${r.proposed!.name}: ${r.reason}`);
  if (reasons.length) out.push('', 'suggested migration order (safest and most valuable first):', ...reasons);
  return out.join('\n');
}
