import { int, ms, pct, textTable } from '../../reports/format.js';
import { flipFlow, flowHistory, flowStatus, type ControlContext, type HistoryFlip } from '../../proxy/flip-control.js';
import { loadIdentity } from '../../src/events/signature.js';
import { flipPolicy } from '../../src/flips/policy.js';
import { sidecarBaseUrl } from '../../src/net.js';
import { loadConfig, parseCommandArgs, usageError, withBus, type CliIo, type CommandDeps } from '../io.js';

export const FLIP_USAGE = `usage: cutover flip FLOW --to MODE --config FILE [--reason TEXT] [--force] [--who NAME]

  MODE is direct, shadow, canary:<1-99> or bus. A flip towards the bus is refused unless the flow's
  readiness verdict is READY (direct -> shadow is always allowed; for canary -> bus only the canary's own
  records count). --force --reason TEXT overrides a refusal and the log records it. A flip back towards
  direct is always allowed. The flip is signed with the config's identity:; with trust.operators set it
  must be an operator's, or the flip is not written (followers would ignore it).

exit codes: 0 flipped (or already in that mode), 1 refused, 2 usage or config error`;

export const STATUS_USAGE = `usage: cutover status --config FILE [--json]

  every flow: current mode (from the flip log), verdict, samples, parity and key figures`;

export const HISTORY_USAGE = `usage: cutover history FLOW --config FILE [--json]

  the flow's flips, oldest first: when, from -> to, who, reason, forced; with trust: configured, who
  signed each record, and records followers ignore marked REJECTED with the reason`;

/** Loads the config, opens its bus, runs `fn` with a control context, closes the bus. */
async function withControl<T>(file: string, deps: CommandDeps, fn: (ctx: ControlContext) => Promise<T>): Promise<T> {
  const config = loadConfig(file, deps);
  // These commands print their own results: the logger speaks only of trouble unless asked for more.
  const level = config.log.level === 'info' ? 'warn' : config.log.level;
  // Judged like the sidecars judge the log; flips are signed with the CLI's identity (the bus signs with it too).
  const control = { policy: flipPolicy(config.trust), signer: loadIdentity(config).signer };
  return withBus(config, deps, (bus, logger) => fn({ bus, flows: config.flows, readiness: config.readiness, baseUrl: sidecarBaseUrl(config.listen), now: deps.now, logger, ...control }), level);
}

/** `cutover flip`: 0 flipped or no-op; throws CUTOVER_FLIP_REFUSED (exit 1), CUTOVER_USAGE / config / unknown flow / CUTOVER_FLIP_NOT_OPERATOR (exit 2). */
export async function flipCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    argv,
    {
      config: { type: 'string', short: 'c' },
      to: { type: 'string' },
      reason: { type: 'string' },
      force: { type: 'boolean' },
      who: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    FLIP_USAGE,
    true,
  );
  if (values.help) {
    io.out(FLIP_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw usageError('flip needs exactly one FLOW', FLIP_USAGE);
  if (!values.to) throw usageError('flip needs --to MODE', FLIP_USAGE);
  if (!values.config) throw usageError('flip needs --config FILE', FLIP_USAGE);
  const flow = positionals[0]!;
  const result = await withControl(values.config, deps, (ctx) => flipFlow(ctx, { flow, to: values.to!, reason: values.reason, force: values.force, who: values.who }));
  if (result.action === 'noop') {
    io.out(`${result.flow} is already in ${result.mode}: nothing to do`);
    return 0;
  }
  const r = result.record;
  const evidence = r.report ? ` (verdict ${r.report.verdict}, ${int(r.report.samples)} samples, parity ${pct(r.report.parity)}, lower bound ${pct(r.report.parityLowerBound)}${r.report.basis === 'canary' ? ', canary records' : ''})` : '';
  io.out(`flipped ${r.flow}: ${r.from} -> ${r.to}${evidence}`);
  if (r.forced) {
    io.out(`FORCED past a ${r.report?.verdict ?? 'missing'} verdict; reason: ${r.reason}`);
    for (const reason of r.report?.reasons ?? []) io.out(`  - ${reason.criterion} (${reason.status}): ${reason.message}`);
  }
  io.out('every sidecar following the flip log applies it within a second');
  return 0;
}

/** `cutover status`: a table of every flow. Exit 0 (it reports; it does not gate). */
export async function statusCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, STATUS_USAGE);
  if (values.help) {
    io.out(STATUS_USAGE);
    return 0;
  }
  if (!values.config) throw usageError('status needs --config FILE', STATUS_USAGE);
  const status = await withControl(values.config, deps, (ctx) => flowStatus(ctx));
  if (values.json) {
    io.out(
      JSON.stringify(
        status.flows.map((s) => ({
          flow: s.flow,
          mode: s.mode,
          verdict: s.report.verdict.status,
          samples: s.report.samples,
          parity: s.report.parity.value,
          parityLowerBound: s.report.parity.lowerBound,
          missingRate: s.report.missing.rate,
          busErrorRate: s.report.errorBus.rate,
          busP99Ms: s.report.latency.bus?.p99 ?? null,
          reasons: s.report.verdict.reasons.map((r) => r.message),
          lastFlip: s.lastFlip,
        })),
        null,
        2,
      ),
    );
    return 0;
  }
  const rows: string[][] = [];
  for (const s of status.flows) {
    const r = s.report;
    rows.push([
      s.flow,
      s.mode,
      r.verdict.status,
      int(r.samples),
      pct(r.parity.value),
      pct(r.parity.lowerBound),
      pct(r.missing.rate),
      pct(r.errorBus.rate),
      ms(r.latency.bus?.p99),
      s.lastFlip ? `${s.lastFlip.at} ${s.lastFlip.from} -> ${s.lastFlip.to}${s.lastFlip.forced ? ' (forced)' : ''}${s.lastFlip.automatic ? ' (automatic rollback)' : ''}` : '(config)',
    ]);
  }
  io.out(textTable(['FLOW', 'MODE', 'VERDICT', 'SAMPLES', 'PARITY', 'LOWER 95%', 'MISSING', 'BUS ERR', 'BUS P99', 'LAST FLIP'], rows).join('\n'));
  for (const s of status.flows) {
    for (const reason of s.report.verdict.reasons) io.out(`  ${s.flow}: ${reason.criterion} (${reason.status}): ${reason.message}`);
  }
  return 0;
}

/** One line of `cutover history`; a record followers ignore is marked REJECTED with why. */
export function historyLine(f: HistoryFlip): string {
  const verdict = f.report ? ` [${f.report.verdict}, ${int(f.report.samples)} samples, parity ${pct(f.report.parity)}]` : '';
  const signer = f.signer ? `  signed by ${f.signer}` : '';
  const rejected = f.rejected ? `  REJECTED (${f.rejected.reason}): ${f.rejected.message}` : '';
  return `${f.at}  ${f.from} -> ${f.to}  by ${f.who}${signer}${f.automatic ? '  AUTOMATIC' : ''}${f.forced ? '  FORCED' : ''}${f.reason ? `  reason: ${f.reason}` : ''}${verdict}${rejected}`;
}

/** `cutover history FLOW`: the flow's flips, oldest first. Exit 0. */
export async function historyCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, HISTORY_USAGE, true);
  if (values.help) {
    io.out(HISTORY_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw usageError('history needs exactly one FLOW', HISTORY_USAGE);
  if (!values.config) throw usageError('history needs --config FILE', HISTORY_USAGE);
  const flow = positionals[0]!;
  const flips = await withControl(values.config, deps, (ctx) => flowHistory(ctx, flow));
  if (values.json) {
    io.out(JSON.stringify(flips, null, 2));
    return 0;
  }
  if (flips.length === 0) {
    io.out(`${flow}: no flips yet (mode as configured)`);
    return 0;
  }
  for (const f of flips) io.out(historyLine(f));
  return 0;
}
