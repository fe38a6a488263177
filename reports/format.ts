/** Number formatting shared by the verdict messages and every renderer, so all outputs agree. */

/** 0.99937 → `99.937%`; enough digits to tell 99.9% from 99.94%; `–` for null. */
export function pct(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined) return '–';
  if (value === 1) return '100%';
  if (value === 0) return '0%';
  const p = value * 100;
  // Small rates need more precision to be readable (0.0123%).
  const d = p < 0.1 ? Math.max(digits, 4) : digits;
  const rounded = Number(p.toFixed(d));
  // Never print 100% for something short of it, nor 0% for something above it.
  if (rounded >= 100) return `>${(100 - 10 ** -d).toFixed(d)}%`;
  if (rounded <= 0) return `<${(10 ** -d).toFixed(d)}%`;
  return `${rounded}%`;
}

/** Milliseconds, short: `0.42 ms`, `12.3 ms`, `1,250 ms`; `–` for null. */
export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  if (value < 10) return `${Number(value.toFixed(2))} ms`;
  if (value < 100) return `${Number(value.toFixed(1))} ms`;
  return `${Math.round(value).toLocaleString('en-US')} ms`;
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined) return '–';
  if (value < 1024) return `${Math.round(value)} B`;
  if (value < 1024 * 1024) return `${Number((value / 1024).toFixed(1))} KiB`;
  return `${Number((value / 1024 / 1024).toFixed(1))} MiB`;
}

export function int(value: number): string {
  return value.toLocaleString('en-US');
}

/** A diff value on one line, bounded, for tables. */
export function valueText(value: unknown, max = 80): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Threshold or measurement of a criterion, in its unit. */
export function criterionValue(criterion: string, value: number | null): string {
  if (value === null) return '–';
  if (criterion === 'minSamples') return int(value);
  if (criterion === 'maxBusP99Ms') return ms(value);
  return pct(value);
}

/**
 * A header and rows as aligned text columns, two spaces apart, trailing blanks trimmed: one string per line,
 * the header first. Columns in `right` are right-aligned. `lastCell`, when given, renders the last cell of
 * each row (not the header) instead of padding it: a coloured verdict, say.
 */
export function textTable(header: string[], rows: string[][], options: { right?: ReadonlySet<number>; lastCell?: (cell: string) => string } = {}): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], isRow: boolean): string =>
    cells
      .map((c, i) => (isRow && options.lastCell && i === cells.length - 1 ? options.lastCell(c) : options.right?.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header, false), ...rows.map((r) => line(r, true))];
}

/** How a report words the parity interval: the anytime-valid one the verdict judges, Wilson's for reading. */
export function parityIntervalText(p: { lowerBound: number | null; upperBound: number | null; wilsonLowerBound: number | null; wilsonUpperBound: number | null }): string {
  return `anytime-valid 95% interval ${pct(p.lowerBound)} – ${pct(p.upperBound)} (Wilson ${pct(p.wilsonLowerBound)} – ${pct(p.wilsonUpperBound)}, for one look)`;
}

/** One sentence on a flow's change point, or null when its parity did not change. */
export function changeText(change: { at: string; before: { parity: { value: number | null; compared: number } }; after: { parity: { value: number | null; compared: number } } } | null): string | null {
  if (!change) return null;
  const { before, after } = change;
  return `parity changed at ${change.at}: ${pct(before.parity.value)} of ${int(before.parity.compared)} compared before, ${pct(after.parity.value)} of ${int(after.parity.compared)} since; the verdict judges the records since`;
}

/** One line per version pair when versions are reported: "shadow v1.4.2 since …: 37 calls; …". */
export function versionLines(pairs: ReadonlyArray<{ direct: string | null; bus: string | null; current: boolean; samples: number; parity: { value: number | null }; firstAt: string; lastAt: string; verdict: string }>): string[] {
  if (pairs.length === 0 || (pairs.length === 1 && pairs[0]!.direct === null && pairs[0]!.bus === null)) return [];
  return pairs.map(
    (p) =>
      `${p.current ? 'now' : 'before'}: direct ${p.direct ?? '(no version)'} · bus ${p.bus ?? '(no version)'}, ${p.current ? `since ${p.firstAt}` : `${p.firstAt} → ${p.lastAt}`}: ${int(p.samples)} samples, parity ${pct(p.parity.value)}, ${p.verdict}${p.current ? ' (judged)' : ' (shown, not counted)'}`,
  );
}

/** One sentence on a flow's last flip, or null when it has none. */
export function lastFlipText(f: { at: string; from: string; to: string; who: string; reason: string | null; forced: boolean; automatic: boolean } | null): string | null {
  if (!f) return null;
  return `${f.at} ${f.from} -> ${f.to} by ${f.who}${f.automatic ? ' (automatic rollback)' : ''}${f.forced ? ' (forced)' : ''}${f.reason ? `: ${f.reason}` : ''}`;
}

/** Contract drift in one line (`3 calls (1.2%) stopped fitting the contract; latest: request /qty: ...`), null without drift. */
export function driftText(d: { count: number; rate: number | null; examples: ReadonlyArray<{ problem: string }> } | undefined): string | null {
  if (!d || d.count === 0) return null;
  const latest = d.examples.at(-1)?.problem;
  return `${int(d.count)} call${d.count === 1 ? '' : 's'} (${pct(d.rate)}) stopped fitting the contract${latest ? `; latest: ${latest}` : ''}`;
}
