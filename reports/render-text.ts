import { PARITY_OUTCOMES } from '../src/parity/types.js';
import { bytes, criterionValue, int, ms, pct, textTable, valueText, changeText, parityIntervalText, versionLines, lastFlipText, driftText } from './format.js';
import type { FlowReport, Percentiles, Report, VerdictStatus } from './types.js';
import { mismatchStepsText } from './saga.js';

export interface TextOptions {
  /** ANSI colour; the CLI turns it on only when writing to a TTY (and NO_COLOR is unset). */
  colour?: boolean;
}

const ANSI = { reset: '\x1b[0m', bold: '\x1b[1m', dim: '\x1b[2m', red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m' } as const;

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Text from records must not drive the terminal: control characters are shown escaped. */
function clean(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A readable terminal report: one summary table, then a section per flow with reasons and evidence. */
export function renderText(report: Report, options: TextOptions = {}): string {
  const paint = (code: keyof typeof ANSI, text: string) => (options.colour ? `${ANSI[code]}${text}${ANSI.reset}` : text);
  const verdict = (status: VerdictStatus) => paint(status === 'READY' ? 'green' : status === 'NOT_READY' ? 'red' : 'yellow', status);
  const lines: string[] = [];

  const s = report.summary;
  lines.push(paint('bold', 'cutover readiness report'));
  lines.push(
    `generated ${report.generatedAt}${report.since ? ` · records since ${report.since}` : ''} · ${report.flows.length} flow${report.flows.length === 1 ? '' : 's'}: ` +
      `${s.READY} READY, ${s.NOT_READY} NOT_READY, ${s.INSUFFICIENT_DATA} INSUFFICIENT_DATA · overall ${verdict(report.verdict)}`,
  );
  const skipped = report.input.invalid + report.input.unsupportedVersion;
  lines.push(
    paint('dim', `records: ${int(report.input.read)} read, ${int(report.input.used)} used, ${int(report.input.beforeSince)} before --since, ${int(report.input.otherFlows)} of other flows${skipped ? `, ${int(skipped)} skipped as unreadable` : ''}`),
  );
  lines.push('');

  const header = ['FLOW', 'MODE', 'SAMPLES', 'PARITY', '95% LOWER', 'MISSING', 'DLQ', 'DIRECT p99', 'BUS p99', 'LAG p99', 'VERDICT'];
  const rows = report.flows.map((f) => [
    clean(f.flow),
    clean(f.mode),
    int(f.samples),
    pct(f.parity.value),
    pct(f.parity.lowerBound),
    pct(f.missing.rate),
    pct(f.dlq.rate),
    ms(f.latency.direct?.p99),
    ms(f.latency.bus?.p99),
    ms(f.latency.busLag?.p99),
    f.verdict.status,
  ]);
  const [head, ...body] = textTable(header, rows, { right: new Set([2, 3, 4, 5, 6, 7, 8, 9]), lastCell: (c) => verdict(c as VerdictStatus) });
  lines.push(paint('bold', head!), ...body);
  if (report.flows.length === 0) lines.push('(no flows)');

  for (const f of report.flows) lines.push('', ...flowSection(f, paint, verdict));
  return `${lines.join('\n')}\n`;
}

type Paint = (code: keyof typeof ANSI, text: string) => string;

function flowSection(f: FlowReport, paint: Paint, verdict: (s: VerdictStatus) => string): string[] {
  const out: string[] = [];
  out.push(`${paint('bold', `── ${clean(f.flow)}`)} (mode ${clean(f.mode)}${f.method ? `, ${clean(f.method)}` : ''}) ${verdict(f.verdict.status)}`);
  if (f.firstAt) out.push(`  window     ${f.firstAt} → ${f.lastAt}`);
  out.push(`  outcomes   ${PARITY_OUTCOMES.map((o) => `${o} ${int(f.outcomes[o])}`).join(' · ')}`);
  out.push(
    `  parity     ${pct(f.parity.value)} of ${int(f.parity.compared)} compared (${parityIntervalText(f.parity)})`,
  );
  const change = changeText(f.change);
  if (change) out.push(`  change     ${change}`);
  const flip = lastFlipText(f.lastFlip);
  if (flip) out.push(`  last flip  ${clean(flip)}`);
  for (const [i, line] of versionLines(f.versions).entries()) out.push(`  ${i === 0 ? 'versions' : ''.padEnd(8)}   ${clean(line)}`);
  out.push(
    `  rates      missing bus ${pct(f.missingBus.rate)} · missing direct ${pct(f.missingDirect.rate)} · error bus ${pct(f.errorBus.rate)} · error direct ${pct(f.errorDirect.rate)} · DLQ ${pct(f.dlq.rate)} (${int(f.dlq.count)})`,
  );
  if (f.errorCodes.length > 0) out.push(`  errors     ${f.errorCodes.map((e) => `${clean(e.code)} ${int(e.count)}`).join(' · ')}`);
  const lat = (name: string, p: Percentiles | null) =>
    `    ${name.padEnd(10)}${p ? `${ms(p.p50).padStart(10)} ${ms(p.p95).padStart(10)} ${ms(p.p99).padStart(10)} ${ms(p.max).padStart(10)}   (${int(p.count)})` : '         –'}`;
  out.push(`  latency   ${'p50'.padStart(10)} ${'p95'.padStart(10)} ${'p99'.padStart(10)} ${'max'.padStart(10)}`);
  out.push(lat('direct', f.latency.direct), lat('bus e2e', f.latency.bus), lat('bus lag', f.latency.busLag));
  if (f.eventBytes) out.push(`  events     p50 ${bytes(f.eventBytes.p50)} · p95 ${bytes(f.eventBytes.p95)} · max ${bytes(f.eventBytes.max)}`);
  const drift = driftText(f.drift);
  if (drift) out.push(`  drift      ${paint('yellow', clean(drift))}`);
  if (f.saga) {
    const g = f.saga;
    out.push(`  saga ${clean(g.name)}: ${int(g.ended.completed)} completed, ${int(g.ended.compensated)} compensated, ${int(g.ended.stuck)} stuck${g.mismatchSteps.length ? `; mismatches at step ${clean(mismatchStepsText(g))}` : ''}`);
    out.push(`    ${'step'.padEnd(12)}${'refused'.padStart(8)}${'failed'.padStart(8)}${'undone'.padStart(8)}${'undo ✗'.padStart(8)}${'p50'.padStart(10)}${'p99'.padStart(10)}`);
    for (const st of g.steps) {
      out.push(`    ${clean(st.name).padEnd(12)}${int(st.refused).padStart(8)}${int(st.failed).padStart(8)}${int(st.compensated).padStart(8)}${int(st.compensationFailed).padStart(8)}${(st.latency ? ms(st.latency.p50) : '–').padStart(10)}${(st.latency ? ms(st.latency.p99) : '–').padStart(10)}`);
    }
  }

  if (f.verdict.reasons.length > 0) {
    out.push('  reasons');
    for (const r of f.verdict.reasons) {
      const mark = r.status === 'fail' ? paint('red', '✗') : paint('yellow', '?');
      out.push(`    ${mark} ${r.criterion}: measured ${criterionValue(r.criterion, r.measured)}, threshold ${criterionValue(r.criterion, r.threshold)} — ${r.message}`);
    }
  }
  if (f.verdict.advice.length > 0) {
    out.push('  advice');
    for (const a of f.verdict.advice) out.push(`    • ${a.message}`);
  }
  if (f.topDiffs.length > 0) {
    out.push('  top differing fields');
    for (const d of f.topDiffs) {
      const kinds = Object.entries(d.kinds).map(([k, n]) => `${k} ${int(n)}`).join(', ');
      out.push(`    ${clean(d.field)}  ${int(d.count)} calls (${kinds})`);
      for (const e of d.examples) {
        out.push(paint('dim', `      ${clean(e.correlationId)} ${e.at}: ${clean(e.path)} ${e.kind}: direct ${clean(valueText(e.direct))} → bus ${clean(valueText(e.bus))}`));
        if (e.curl) out.push(`        ${e.curl}${e.curlNote ? paint('dim', `   # ${clean(e.curlNote)}`) : ''}`);
      }
    }
    if (f.untrackedDiffFields > 0) out.push(paint('dim', `    (+${int(f.untrackedDiffFields)} more differing fields not itemised)`));
  }
  if (f.mismatchesWithoutDiffs > 0) out.push(`  ${int(f.mismatchesWithoutDiffs)} mismatches carried no diff detail`);
  if (f.noise.length > 0) out.push(`  noise      ${f.noise.slice(0, 10).map((n) => `${clean(n.field)} (${int(n.count)})`).join(', ')}${f.noise.length > 10 ? `, +${f.noise.length - 10} more` : ''}`);
  return out;
}
