import { PARITY_OUTCOMES } from '../src/parity/types.js';
import { bytes, criterionValue, int, ms, pct, valueText, changeText, parityIntervalText, versionLines, lastFlipText, driftText } from './format.js';
import type { FlowReport, LastFlip, Percentiles, Report, Timeline, VerdictStatus } from './types.js';
import { mismatchStepsText } from './saga.js';

/**
 * One self-contained HTML file: inline CSS, inline SVG charts, no scripts, fonts or images. A
 * Content-Security-Policy forbids every fetch as a second line of defence behind escaping, since diff
 * values and requests in the report come from the wire.
 */
/** One flip of a flow as the HTML report lists it (src/flips keeps the full record on `cutover.control`). */
export interface HtmlFlip extends Omit<LastFlip, 'automatic'> {
  automatic?: boolean;
  /** Verdict the flip relied on, when it was gated. */
  verdict?: string | null;
}

export interface HtmlOptions {
  /** Flip history per flow name, oldest first: shown in each flow's section when given. */
  flips?: ReadonlyMap<string, readonly HtmlFlip[]>;
}

export function renderHtml(report: Report, options: HtmlOptions = {}): string {
  const s = report.summary;
  const body = [
    `<header><div class="title"><h1>Cutover readiness</h1>${badge(report.verdict)}</div>`,
    `<p class="meta">Generated ${esc(report.generatedAt)}${report.since ? ` · records since ${esc(report.since)}` : ''} · ${report.flows.length} flow${report.flows.length === 1 ? '' : 's'}: ` +
      `${s.READY} ready, ${s.NOT_READY} not ready, ${s.INSUFFICIENT_DATA} with insufficient data · ${int(report.input.used)} of ${int(report.input.read)} records used</p></header>`,
    summaryTable(report),
    ...report.flows.map((f, i) => flowSection(f, i, options.flips?.get(f.flow))),
    `<footer>Report schema ${esc(report.schemaVersion)} · parity = match ÷ (match + mismatch), lower bound = 95% Wilson score interval · times in UTC</footer>`,
  ].join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="referrer" content="no-referrer">
<title>Cutover readiness: ${esc(report.verdict)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

const CSS = `
:root{--bg:#f6f7f9;--card:#fff;--fg:#1d2330;--muted:#5d6678;--line:#dde1e8;--ready:#17803d;--ready-bg:#e3f5e8;--bad:#c4281c;--bad-bg:#fde7e4;--warn:#9a6200;--warn-bg:#fff2d6;
--match:#7fb98f;--mismatch:#d9534f;--missing:#f0ad4e;--errors:#8e6cc0;--parity:#1f5fbf;--p50:#9db8e0;--p95:#4f7fc4;--p99:#1f3f7a;--code:#f0f2f5}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--card:#1c2027;--fg:#e4e7ec;--muted:#9aa3b2;--line:#2f3541;--ready:#5fcf80;--ready-bg:#173222;--bad:#ff7b6e;--bad-bg:#3a1d1b;--warn:#f0c060;--warn-bg:#3a2e12;--parity:#7fb0ff;--p50:#3a5685;--p95:#5d87cc;--p99:#a9c6f5;--code:#262b34}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:24px;margin:0}
h2{font-size:19px;margin:0;word-break:break-all}
h3{font-size:14px;margin:18px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.title{display:flex;align-items:center;gap:12px}
.meta{color:var(--muted);margin:6px 0 18px}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:0 0 18px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.summary td a{color:inherit;font-weight:600;text-decoration:none;border-bottom:1px dotted var(--muted)}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:700;letter-spacing:.03em;white-space:nowrap}
.badge.READY{color:var(--ready);background:var(--ready-bg)}
.badge.NOT_READY{color:var(--bad);background:var(--bad-bg)}
.badge.INSUFFICIENT_DATA{color:var(--warn);background:var(--warn-bg)}
.flowhead{display:flex;align-items:center;gap:12px;flex-wrap:wrap}
.mode{color:var(--muted)}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;margin:14px 0 4px}
.kpi{border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.kpi .label{font-size:12px;color:var(--muted)}
.kpi .value{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.kpi .sub{font-size:12px;color:var(--muted)}
ul.reasons,ul.advice{margin:4px 0;padding-left:0;list-style:none}
ul.reasons li,ul.advice li{margin:4px 0;padding:6px 10px;border-radius:6px}
ul.reasons li.fail{background:var(--bad-bg)}
ul.reasons li.insufficient{background:var(--warn-bg)}
ul.advice li{background:var(--code)}
.crit{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px;margin-top:8px}
figure{margin:0}
figcaption{font-size:12px;color:var(--muted);margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block}
svg text{fill:var(--muted);font-size:11px;font-family:inherit}
svg .grid{stroke:var(--line);stroke-width:1}
svg .threshold{stroke:var(--bad);stroke-width:1.2;stroke-dasharray:5 4}
svg .parity{fill:none;stroke:var(--parity);stroke-width:2}
svg .dot{fill:var(--parity)}
svg .match{fill:var(--match)} svg .mismatch{fill:var(--mismatch)} svg .missing{fill:var(--missing)} svg .errors{fill:var(--errors)}
svg .p50{fill:var(--p50)} svg .p95{fill:var(--p95)} svg .p99{fill:var(--p99)}
svg .empty{font-size:13px}
.legend{display:flex;gap:12px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
code{background:var(--code);padding:1px 5px;border-radius:4px;overflow-wrap:anywhere}
td.field code{white-space:nowrap}
pre{background:var(--code);padding:8px 10px;border-radius:6px;white-space:pre-wrap;word-break:break-all;margin:4px 0 10px}
pre code{background:none;padding:0}
details{margin-top:12px}
summary{cursor:pointer;font-weight:600}
.example{margin:6px 0 0 0;padding-left:10px;border-left:3px solid var(--line)}
.muted{color:var(--muted)}
.stats td:first-child{color:var(--muted)}
footer{color:var(--muted);font-size:12px;margin-top:24px}
`;

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** Text and attribute escaping; control characters (invalid in HTML) are shown as `\xNN`. */
function esc(value: string): string {
  return value
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
    .replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function badge(status: VerdictStatus): string {
  return `<span class="badge ${status}">${status.replace('_', ' ')}</span>`;
}

function summaryTable(report: Report): string {
  const rows = report.flows
    .map(
      (f, i) =>
        `<tr><td><a href="#flow-${i}">${esc(f.flow)}</a></td><td>${esc(f.mode)}</td><td class="num">${int(f.samples)}</td><td class="num">${pct(f.parity.value)}</td><td class="num">${pct(f.parity.lowerBound)}</td>` +
        `<td class="num">${pct(f.missing.rate)}</td><td class="num">${pct(f.dlq.rate)}</td><td class="num">${ms(f.latency.direct?.p99)}</td><td class="num">${ms(f.latency.bus?.p99)}</td><td class="num">${ms(f.latency.busLag?.p99)}</td><td>${badge(f.verdict.status)}</td></tr>`,
    )
    .join('\n');
  return `<section class="card summary"><table>
<thead><tr><th>Flow</th><th>Mode</th><th class="num">Samples</th><th class="num">Parity</th><th class="num">95% lower</th><th class="num">Missing</th><th class="num">DLQ</th><th class="num">Direct p99</th><th class="num">Bus p99</th><th class="num">Lag p99</th><th>Verdict</th></tr></thead>
<tbody>${rows || '<tr><td colspan="11" class="muted">No flows.</td></tr>'}</tbody></table></section>`;
}

function flipsTable(flips: readonly HtmlFlip[]): string {
  if (flips.length === 0) return `<h3>Flips</h3><p class="muted">No flips yet: the mode is the config's.</p>`;
  const rows = flips
    .map(
      (f) =>
        `<tr${f.forced ? ' class="forced"' : ''}><td>${esc(f.at)}</td><td>${esc(f.from)} → <b>${esc(f.to)}</b></td><td>${esc(f.who)}</td><td>${f.forced ? badge('NOT_READY').replace('NOT READY', 'FORCED') : ''}${f.verdict ? ` ${esc(f.verdict)}` : ''}</td><td>${esc(f.reason ?? '')}</td></tr>`,
    )
    .join('');
  return `<h3>Flips</h3><table class="flips"><thead><tr><th>When (UTC)</th><th>Mode</th><th>Who</th><th>Gate</th><th>Reason</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function flowSection(f: FlowReport, index: number, flips?: readonly HtmlFlip[]): string {
  const parts: string[] = [];
  parts.push(
    `<section class="card flow" id="flow-${index}" data-flow="${esc(f.flow)}" data-verdict="${f.verdict.status}">`,
    `<div class="flowhead"><h2>${esc(f.flow)}</h2>${badge(f.verdict.status)}<span class="mode">mode <b>${esc(f.mode)}</b>${f.method ? ` · ${esc(f.method)}` : ''}${f.firstAt ? ` · ${esc(f.firstAt)} → ${esc(f.lastAt ?? '')}` : ''}</span></div>`,
  );
  const kpi = (label: string, value: string, sub: string) => `<div class="kpi"><div class="label">${label}</div><div class="value">${value}</div><div class="sub">${sub}</div></div>`;
  parts.push(
    `<div class="kpis">`,
    kpi('Samples', int(f.samples), `min ${int(f.criteria.minSamples)}`),
    kpi('Parity', pct(f.parity.value), `95% lower ${pct(f.parity.lowerBound)} (Wilson ${pct(f.parity.wilsonLowerBound)}) · min ${pct(f.criteria.minParityLowerBound)}`),
    kpi('Missing', pct(f.missing.rate), `${int(f.missing.count)} · max ${pct(f.criteria.maxMissingRate)}`),
    kpi('DLQ', pct(f.dlq.rate), `${int(f.dlq.count)} · max ${pct(f.criteria.maxDlqRate)}`),
    kpi('Bus errors', pct(f.errorBus.rate), `${int(f.errorBus.count)} · max ${pct(f.criteria.maxBusErrorRate)}`),
    kpi('Bus p99', ms(f.latency.bus?.p99), f.criteria.maxBusP99Ms === null ? 'not gated' : `max ${ms(f.criteria.maxBusP99Ms)}`),
    `</div>`,
  );
  const change = changeText(f.change);
  if (change) parts.push(`<p class="change">${esc(change)}</p>`);
  const flip = lastFlipText(f.lastFlip);
  if (flip) parts.push(`<p class="flip">Last flip: ${esc(flip)}</p>`);
  const versions = versionLines(f.versions);
  if (versions.length > 0) parts.push(`<h3>Versions</h3><ul class="versions">${versions.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>`);
  if (f.verdict.reasons.length > 0) {
    parts.push(
      `<h3>Reasons</h3><ul class="reasons">${f.verdict.reasons
        .map(
          (r) =>
            `<li class="${r.status}"><span class="crit">${r.criterion}</span> ${r.status === 'fail' ? 'failed' : 'not yet met'}: measured <b>${esc(criterionValue(r.criterion, r.measured))}</b>, threshold <b>${esc(criterionValue(r.criterion, r.threshold))}</b> — ${esc(r.message)}</li>`,
        )
        .join('')}</ul>`,
    );
  }
  if (flips) parts.push(flipsTable(flips));
  if (f.verdict.advice.length > 0) parts.push(`<h3>Advice</h3><ul class="advice">${f.verdict.advice.map((a) => `<li>${esc(a.message)}</li>`).join('')}</ul>`);

  parts.push(
    `<div class="charts">`,
    `<figure><figcaption>Parity (left axis) and calls per ${esc(bucketLabel(f.timeline.bucketMs))} bucket (right axis) over time, UTC</figcaption>${timelineChart(f.timeline, f.criteria.minParityLowerBound, f.flow)}` +
      `<div class="legend"><span><i style="background:var(--match)"></i>match</span><span><i style="background:var(--mismatch)"></i>mismatch</span><span><i style="background:var(--missing)"></i>missing</span><span><i style="background:var(--errors)"></i>error</span><span><i style="background:var(--parity)"></i>parity</span><span><i style="background:var(--bad)"></i>parity threshold</span></div></figure>`,
    `<figure><figcaption>Latency percentiles (HDR histograms)</figcaption>${latencyChart(f)}` +
      `<div class="legend"><span><i style="background:var(--p50)"></i>p50</span><span><i style="background:var(--p95)"></i>p95</span><span><i style="background:var(--p99)"></i>p99</span></div></figure>`,
    `</div>`,
  );

  parts.push(`<details${f.verdict.status === 'READY' ? '' : ' open'}><summary>Evidence</summary>`);
  parts.push(
    `<table class="stats"><tbody>` +
      `<tr><td>Outcomes</td><td>${PARITY_OUTCOMES.map((o) => `${o} <b>${int(f.outcomes[o])}</b>`).join(' · ')}</td></tr>` +
      `<tr><td>Parity interval</td><td>${pct(f.parity.lowerBound)} – ${pct(f.parity.upperBound)} over ${int(f.parity.compared)} compared calls</td></tr>` +
      `<tr><td>Rates</td><td>missing bus ${pct(f.missingBus.rate)} · missing direct ${pct(f.missingDirect.rate)} · error bus ${pct(f.errorBus.rate)} · error direct ${pct(f.errorDirect.rate)}</td></tr>` +
      (f.errorCodes.length ? `<tr><td>Error codes</td><td>${f.errorCodes.map((e) => `<code>${esc(e.code)}</code> ${int(e.count)}`).join(' · ')}</td></tr>` : '') +
      (driftText(f.drift) ? `<tr><td>Contract drift</td><td>${esc(driftText(f.drift)!)}</td></tr>` : '') +
      (f.eventBytes ? `<tr><td>Event size</td><td>p50 ${bytes(f.eventBytes.p50)} · p95 ${bytes(f.eventBytes.p95)} · max ${bytes(f.eventBytes.max)}</td></tr>` : '') +
      `<tr><td>Latency</td><td>${latencyText('direct', f.latency.direct)}<br>${latencyText('bus end to end', f.latency.bus)}<br>${latencyText('bus lag', f.latency.busLag)}</td></tr>` +
      (Object.keys(f.modesObserved).length ? `<tr><td>Modes observed</td><td>${Object.entries(f.modesObserved).map(([m, n]) => `${esc(m)} ${int(n)}`).join(' · ')}</td></tr>` : '') +
      `</tbody></table>`,
  );
  if (f.saga) {
    const g = f.saga;
    parts.push(
      `<h3>saga ${esc(g.name)}</h3><p>${int(g.ended.completed)} completed · ${int(g.ended.compensated)} compensated · ${int(g.ended.stuck)} stuck${g.mismatchSteps.length ? ` · mismatches at step ${esc(mismatchStepsText(g))}` : ''}</p>` +
        `<table><thead><tr><th>Step</th><th class="num">Failed</th><th class="num">Refused</th><th class="num">Compensated</th><th class="num">Compensation failed</th><th class="num">p50</th><th class="num">p99</th></tr></thead><tbody>` +
        g.steps
          .map((st) => `<tr><td>${esc(st.name)}</td><td class="num">${int(st.failed)}</td><td class="num">${int(st.refused)}</td><td class="num">${int(st.compensated)}</td><td class="num">${int(st.compensationFailed)}</td><td class="num">${ms(st.latency?.p50)}</td><td class="num">${ms(st.latency?.p99)}</td></tr>`)
          .join('') +
        `</tbody></table>`,
    );
  }
  if (f.topDiffs.length > 0) {
    parts.push(`<h3>Fields that differ most</h3><table><thead><tr><th>Field</th><th class="num">Calls</th><th>Kinds</th><th>Examples</th></tr></thead><tbody>`);
    for (const d of f.topDiffs) {
      const examples = d.examples
        .map(
          (e) =>
            `<div class="example"><div><code>${esc(e.path)}</code> ${esc(e.kind)} · direct <code>${esc(valueText(e.direct))}</code> → bus <code>${esc(valueText(e.bus))}</code> <span class="muted">${esc(e.correlationId)}</span></div>` +
            (e.curl ? `<pre><code>${esc(e.curl)}</code></pre>` : '') +
            (e.curlNote ? `<div class="muted">${esc(e.curlNote)}</div>` : '') +
            `</div>`,
        )
        .join('');
      parts.push(`<tr><td class="field"><code>${esc(d.field)}</code></td><td class="num">${int(d.count)}</td><td>${Object.entries(d.kinds).map(([k, n]) => `${esc(k)} ${int(n)}`).join(', ')}</td><td>${examples}</td></tr>`);
    }
    parts.push(`</tbody></table>`);
    if (f.untrackedDiffFields > 0) parts.push(`<p class="muted">+${int(f.untrackedDiffFields)} more differing fields not itemised.</p>`);
  }
  if (f.mismatchesWithoutDiffs > 0) parts.push(`<p class="muted">${int(f.mismatchesWithoutDiffs)} mismatches carried no diff detail.</p>`);
  if (f.noise.length > 0) parts.push(`<h3>Noise (excluded from parity)</h3><p>${f.noise.map((n) => `<code>${esc(n.field)}</code> ${int(n.count)}`).join(' · ')}</p>`);
  parts.push(`</details></section>`);
  return parts.join('\n');
}

function latencyText(name: string, p: Percentiles | null): string {
  return p ? `${name}: p50 ${ms(p.p50)} · p95 ${ms(p.p95)} · p99 ${ms(p.p99)} · max ${ms(p.max)} (${int(p.count)})` : `${name}: no data`;
}

function bucketLabel(bucketMs: number): string {
  if (bucketMs % 86_400_000 === 0) return `${bucketMs / 86_400_000} d`;
  if (bucketMs % 3_600_000 === 0) return `${bucketMs / 3_600_000} h`;
  if (bucketMs % 60_000 === 0) return `${bucketMs / 60_000} min`;
  return `${bucketMs / 1000} s`;
}

const n2 = (v: number) => Number(v.toFixed(2));

/** The largest round lower limit for the parity axis that still shows the lowest value and the threshold. */
function parityFloor(values: number[], threshold: number): number {
  const lowest = Math.min(threshold, ...values);
  for (const floor of [0.999, 0.99, 0.95, 0.9, 0.5]) if (lowest >= floor + (1 - floor) * 0.1) return floor;
  return 0;
}

function emptyChart(label: string, height: number): string {
  return `<svg class="chart empty-chart" viewBox="0 0 560 ${height}" role="img" aria-label="${esc(label)}"><title>${esc(label)}</title><rect x="0.5" y="0.5" width="559" height="${height - 1}" rx="6" fill="none" class="grid"/><text class="empty" x="280" y="${height / 2}" text-anchor="middle">${esc(label)}</text></svg>`;
}

function timelineChart(timeline: Timeline, threshold: number, flow: string): string {
  const buckets = timeline.buckets;
  if (buckets.length === 0) return emptyChart(`${flow}: no records yet`, 214);
  const W = 560;
  const H = 214;
  const left = 52;
  const right = 46;
  const top = 12;
  const bottom = 28;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const volumeStep = niceStep(Math.max(1, ...buckets.map((b) => b.samples)) / 4);
  const maxVolume = volumeStep * 4;
  const parities = buckets.map((b) => b.parity).filter((p): p is number => p !== null);
  const floor = parityFloor(parities, threshold);
  const slot = plotW / buckets.length;
  const barW = Math.max(1, slot * 0.78);
  const yVol = (v: number) => (v / maxVolume) * plotH;
  const yPar = (p: number) => top + plotH - ((Math.max(p, floor) - floor) / (1 - floor)) * plotH;
  const out: string[] = [];
  out.push(`<svg class="chart timeline-chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`${flow}: parity and volume over time`)}"><title>${esc(`${flow}: parity and volume over time`)}</title>`);
  for (let i = 0; i <= 4; i++) {
    const y = n2(top + (plotH * i) / 4);
    const p = 1 - ((1 - floor) * i) / 4;
    const v = maxVolume * (1 - i / 4);
    out.push(`<line class="grid" x1="${left}" x2="${W - right}" y1="${y}" y2="${y}"/>`);
    out.push(`<text x="${left - 6}" y="${n2(y + 4)}" text-anchor="end">${esc(pct(p, 2))}</text>`);
    out.push(`<text x="${W - right + 6}" y="${n2(y + 4)}">${esc(compact(v))}</text>`);
  }
  // Stacked outcome bars: volume on the right axis.
  buckets.forEach((b, i) => {
    const x = n2(left + i * slot + (slot - barW) / 2);
    let y = top + plotH;
    for (const part of ['match', 'mismatch', 'missing', 'errors'] as const) {
      const h = yVol(b[part]);
      if (h <= 0) continue;
      y -= h;
      out.push(`<rect class="${part}" x="${x}" y="${n2(y)}" width="${n2(barW)}" height="${n2(h)}" opacity="0.55"><title>${esc(`${b.start}: ${part} ${b[part]}`)}</title></rect>`);
    }
  });
  const yT = n2(yPar(threshold));
  out.push(`<line class="threshold" x1="${left}" x2="${W - right}" y1="${yT}" y2="${yT}"/>`);
  // Parity line, broken where a bucket compared nothing.
  let segment: string[] = [];
  const flush = () => {
    if (segment.length > 1) out.push(`<polyline class="parity" points="${segment.join(' ')}"/>`);
    segment = [];
  };
  buckets.forEach((b, i) => {
    if (b.parity === null) return flush();
    const x = n2(left + (i + 0.5) * slot);
    const y = n2(yPar(b.parity));
    segment.push(`${x},${y}`);
    if (buckets.length <= 60) out.push(`<circle class="dot" cx="${x}" cy="${y}" r="2.2"><title>${esc(`${b.start}: parity ${pct(b.parity)} of ${b.match + b.mismatch}`)}</title></circle>`);
  });
  flush();
  const first = buckets[0]!.start;
  const last = buckets[buckets.length - 1]!.start;
  const label = (iso: string) => (timeline.bucketMs >= 86_400_000 ? iso.slice(0, 10) : Date.parse(last) - Date.parse(first) >= 86_400_000 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, timeline.bucketMs < 60_000 ? 19 : 16));
  out.push(`<text x="${left}" y="${H - 8}">${esc(label(first))}</text>`);
  if (buckets.length > 2) out.push(`<text x="${n2(left + plotW / 2)}" y="${H - 8}" text-anchor="middle">${esc(label(buckets[Math.floor(buckets.length / 2)]!.start))}</text>`);
  out.push(`<text x="${W - right}" y="${H - 8}" text-anchor="end">${esc(label(last))}</text>`);
  out.push(`</svg>`);
  return out.join('');
}

/** 1, 2 or 5 × 10^k, at least 1: whole-number axis steps that read well. */
function niceStep(raw: number): number {
  if (raw <= 1) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * magnitude >= raw) return m * magnitude;
  return 10 * magnitude;
}

function compact(v: number): string {
  if (v >= 1_000_000) return `${Number((v / 1_000_000).toFixed(1))}M`;
  if (v >= 10_000) return `${Math.round(v / 1000)}k`;
  if (v >= 1000) return `${Number((v / 1000).toFixed(1))}k`;
  return String(Math.round(v));
}

function latencyChart(f: FlowReport): string {
  const series: Array<[string, Percentiles | null]> = [
    ['direct', f.latency.direct],
    ['bus end to end', f.latency.bus],
    ['bus lag', f.latency.busLag],
  ];
  if (series.every(([, p]) => p === null)) return emptyChart(`${f.flow}: no latency measured yet`, 190);
  const W = 560;
  const H = 190;
  const left = 104;
  const right = 70;
  const top = 8;
  const rowH = 56;
  const barH = 13;
  const plotW = W - left - right;
  const max = Math.max(...series.map(([, p]) => p?.p99 ?? 0), f.criteria.maxBusP99Ms ?? 0, 0.001);
  const x = (v: number) => (v / max) * plotW;
  const out: string[] = [];
  out.push(`<svg class="chart latency-chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`${f.flow}: latency percentiles`)}"><title>${esc(`${f.flow}: latency percentiles`)}</title>`);
  series.forEach(([name, p], row) => {
    const y0 = top + row * rowH;
    out.push(`<text x="${left - 8}" y="${y0 + 25}" text-anchor="end">${esc(name)}</text>`);
    if (!p) {
      out.push(`<text x="${left}" y="${y0 + 25}">no data</text>`);
      return;
    }
    (['p50', 'p95', 'p99'] as const).forEach((k, j) => {
      const y = y0 + 4 + j * (barH + 3);
      const w = Math.max(1, x(p[k]));
      out.push(`<rect class="${k}" x="${left}" y="${y}" width="${n2(w)}" height="${barH}" rx="2"><title>${esc(`${name} ${k} ${ms(p[k])}`)}</title></rect>`);
      out.push(`<text x="${n2(left + w + 5)}" y="${y + barH - 3}">${esc(`${k} ${ms(p[k])}`)}</text>`);
    });
  });
  if (f.criteria.maxBusP99Ms !== null) {
    const xt = n2(left + x(f.criteria.maxBusP99Ms));
    out.push(`<line class="threshold" x1="${xt}" x2="${xt}" y1="${top}" y2="${top + 3 * rowH - 6}"/><text x="${xt}" y="${H - 2}" text-anchor="middle">max bus p99 ${esc(ms(f.criteria.maxBusP99Ms))}</text>`);
  }
  out.push(`</svg>`);
  return out.join('');
}
