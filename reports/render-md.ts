import { PARITY_OUTCOMES } from '../src/parity/types.js';
import { bytes, criterionValue, int, ms, pct, valueText, changeText, parityIntervalText, versionLines, lastFlipText, driftText } from './format.js';
import type { FlowReport, Percentiles, Report, VerdictStatus } from './types.js';
import { mismatchStepsText } from './saga.js';

const ICON: Record<VerdictStatus, string> = { READY: '✅', NOT_READY: '❌', INSUFFICIENT_DATA: '⚠️' };

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Plain text from records, made inert: Markdown punctuation backslash-escaped, HTML as entities, one line. */
function text(value: string): string {
  return value
    .replace(CONTROL, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\`*_{}[\]()#+!|~])/g, '\\$1');
}

/** Inline code whatever the content: a backtick fence longer than any run inside; `|` escaped for tables. */
function code(value: string): string {
  const oneLine = value.replace(CONTROL, ' ').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(oneLine.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = oneLine.startsWith('`') || oneLine.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${oneLine}${pad}${fence}`;
}

function block(value: string, lang: string): string {
  const longest = Math.max(2, ...(value.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}${lang}\n${value}\n${fence}`;
}

/** Markdown for a pull request or a chat message: a summary table, then the evidence per flow. */
export function renderMarkdown(report: Report): string {
  const out: string[] = [];
  const s = report.summary;
  out.push(`## ${ICON[report.verdict]} cutover readiness: ${report.verdict}`, '');
  out.push(
    `Generated ${report.generatedAt}${report.since ? `, records since ${report.since}` : ''}. ` +
      `${report.flows.length} flow${report.flows.length === 1 ? '' : 's'}: ${s.READY} READY, ${s.NOT_READY} NOT_READY, ${s.INSUFFICIENT_DATA} INSUFFICIENT_DATA. ` +
      `${int(report.input.used)} of ${int(report.input.read)} records used.`,
    '',
  );
  out.push('| Flow | Mode | Samples | Parity | 95% lower | Missing | DLQ | Direct p99 | Bus p99 | Lag p99 | Verdict |');
  out.push('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|');
  for (const f of report.flows) {
    out.push(
      `| ${code(f.flow)} | ${text(f.mode)} | ${int(f.samples)} | ${pct(f.parity.value)} | ${pct(f.parity.lowerBound)} | ${pct(f.missing.rate)} | ${pct(f.dlq.rate)} | ${ms(f.latency.direct?.p99)} | ${ms(f.latency.bus?.p99)} | ${ms(f.latency.busLag?.p99)} | ${ICON[f.verdict.status]} ${f.verdict.status} |`,
    );
  }
  for (const f of report.flows) out.push('', ...flowSection(f));
  return `${out.join('\n')}\n`;
}

function flowSection(f: FlowReport): string[] {
  const out: string[] = [];
  out.push(`### ${ICON[f.verdict.status]} ${code(f.flow)}: ${f.verdict.status}`, '');
  out.push(`Mode **${text(f.mode)}**${f.method ? `, ${text(f.method)}` : ''}; ${int(f.samples)} samples${f.firstAt ? ` from ${f.firstAt} to ${f.lastAt}` : ''}.`, '');
  if (f.verdict.reasons.length > 0) {
    out.push('**Reasons**', '');
    for (const r of f.verdict.reasons) {
      out.push(`- ${r.status === 'fail' ? '❌' : '⚠️'} \`${r.criterion}\`: measured ${criterionValue(r.criterion, r.measured)}, threshold ${criterionValue(r.criterion, r.threshold)}. ${text(r.message)}`);
    }
    out.push('');
  }
  if (f.verdict.advice.length > 0) {
    out.push('**Advice**', '');
    for (const a of f.verdict.advice) out.push(`- ${text(a.message)}`);
    out.push('');
  }
  out.push('<details><summary>Evidence</summary>', '');
  out.push(`Outcomes: ${PARITY_OUTCOMES.map((o) => `${o} ${int(f.outcomes[o])}`).join(', ')}. DLQ ${int(f.dlq.count)} (${pct(f.dlq.rate)}).`, '');
  out.push(`Parity ${pct(f.parity.value)} of ${int(f.parity.compared)} compared; ${parityIntervalText(f.parity)}.`, '');
  const change = changeText(f.change);
  if (change) out.push(`**Change:** ${change}.`, '');
  const flip = lastFlipText(f.lastFlip);
  if (flip) out.push(`**Last flip:** ${text(flip)}.`, '');
  const versions = versionLines(f.versions);
  if (versions.length > 0) out.push('**Versions**', '', ...versions.map((l) => `- ${text(l)}`), '');
  out.push('| Latency | p50 | p95 | p99 | max | count |', '|---|--:|--:|--:|--:|--:|');
  const lat = (name: string, p: Percentiles | null) => `| ${name} | ${ms(p?.p50)} | ${ms(p?.p95)} | ${ms(p?.p99)} | ${ms(p?.max)} | ${p ? int(p.count) : '–'} |`;
  out.push(lat('direct', f.latency.direct), lat('bus end to end', f.latency.bus), lat('bus lag', f.latency.busLag));
  if (f.eventBytes) out.push('', `Event size: p50 ${bytes(f.eventBytes.p50)}, p95 ${bytes(f.eventBytes.p95)}, max ${bytes(f.eventBytes.max)}.`);
  const drift = driftText(f.drift);
  if (drift) out.push('', `**Contract drift:** ${text(drift)}.`);
  out.push('');
  if (f.saga) {
    const g = f.saga;
    out.push(`**Saga ${text(g.name)}**: ${int(g.ended.completed)} completed, ${int(g.ended.compensated)} compensated, ${int(g.ended.stuck)} stuck${g.mismatchSteps.length ? `; mismatches at step ${text(mismatchStepsText(g))}` : ''}.`, '');
    out.push('| Step | Failed | Refused | Compensated | Compensation failed | p50 | p99 |', '|---|--:|--:|--:|--:|--:|--:|');
    for (const st of g.steps) out.push(`| ${text(st.name)} | ${int(st.failed)} | ${int(st.refused)} | ${int(st.compensated)} | ${int(st.compensationFailed)} | ${ms(st.latency?.p50)} | ${ms(st.latency?.p99)} |`);
    out.push('');
  }
  if (f.topDiffs.length > 0) {
    out.push('**Fields that differ most**', '', '| Field | Calls | Kinds |', '|---|--:|---|');
    for (const d of f.topDiffs) out.push(`| ${code(d.field)} | ${int(d.count)} | ${Object.entries(d.kinds).map(([k, n]) => `${k} ${int(n)}`).join(', ')} |`);
    out.push('');
    for (const d of f.topDiffs) {
      for (const e of d.examples) {
        out.push(`- ${code(e.path)} ${e.kind} in ${code(e.correlationId)}: direct ${code(valueText(e.direct))} → bus ${code(valueText(e.bus))}${e.curlNote ? ` (${text(e.curlNote)})` : ''}`);
        if (e.curl) out.push('', block(e.curl, 'sh').split('\n').map((l) => `  ${l}`).join('\n'), '');
      }
    }
    if (f.untrackedDiffFields > 0) out.push(`- and ${int(f.untrackedDiffFields)} more differing fields not itemised`);
    out.push('');
  }
  if (f.noise.length > 0) out.push(`Noise (excluded from parity): ${f.noise.map((n) => `${code(n.field)} (${int(n.count)})`).join(', ')}.`, '');
  out.push('</details>');
  return out;
}
