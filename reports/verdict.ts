import { bytes, criterionValue, int, ms, pct } from './format.js';
import { samplesNeeded, wilson } from './stats.js';
import { mismatchStepsText } from './saga.js';
import type { Advice, Criteria, FlowReport, Reason, Segment, Verdict, VerdictStatus } from './types.js';

type FlowFacts = Omit<FlowReport, 'criteria' | 'verdict' | 'versions' | 'droppedVersionPairs' | 'lastFlip'>;

/**
 * Decides a flow's verdict. The rule, in order:
 *
 0. The evidence: every record of the flow, or, when its parity changed (reports/change.ts), only the
 *    records since the latest change point. Latency percentiles are always over every record.
 * 1. Each criterion is `pass`, `fail` (the measurement is on the wrong side of the threshold: parity's
 *    point estimate below `minParityLowerBound`, a rate above its maximum, bus p99 above `maxBusP99Ms`) or
 *    `insufficient` (nothing to measure yet, fewer records than `minSamples`, or parity's point estimate
 *    meets the threshold but its anytime-valid 95% lower bound does not yet).
 *    A failure is `conclusive` when the whole interval is on the wrong side (parity's anytime upper bound
 *    below the threshold; a rate's 95% Wilson lower bound above its maximum): then sample size cannot save it.
 * 2. **NOT_READY** when any criterion fails and either the flow has at least `minSamples` records or the
 *    failure is conclusive. So NOT_READY wins over INSUFFICIENT_DATA, but a handful of unlucky calls
 *    cannot sink a flow that simply has not been observed enough.
 * 3. Otherwise **INSUFFICIENT_DATA** when any criterion is not `pass` (including a non-conclusive failure
 *    on too few records).
 * 4. Otherwise **READY**. Too few samples is therefore never READY.
 *
 * Every criterion that is not `pass` is listed as a reason, with its measured value and threshold.
 */
export function decideVerdict(facts: FlowFacts, criteria: Criteria, context: { topic?: string } = {}): Verdict {
  const reasons: Reason[] = [];
  const evidence: Segment = facts.change?.after ?? facts;
  // Every message says which evidence it judged when that is not every record.
  const since = facts.change ? `since the change at ${facts.change.at}: ` : '';
  const n = evidence.samples;
  const enough = n >= criteria.minSamples;

  if (!enough) {
    reasons.push({
      criterion: 'minSamples',
      status: 'insufficient',
      measured: n,
      threshold: criteria.minSamples,
      conclusive: false,
      message: `${since}${int(n)} samples, fewer than the ${int(criteria.minSamples)} required`,
    });
  }

  const parity = evidence.parity;
  const t = criteria.minParityLowerBound;
  if (parity.compared === 0 || parity.value === null || parity.lowerBound === null) {
    reasons.push({ criterion: 'minParityLowerBound', status: 'insufficient', measured: null, threshold: t, conclusive: false, message: `${since}no compared calls (match or mismatch) yet` });
  } else if (parity.lowerBound < t) {
    const failed = parity.value < t;
    const needed = failed ? null : samplesNeeded(parity.value, t);
    reasons.push({
      criterion: 'minParityLowerBound',
      status: failed ? 'fail' : 'insufficient',
      measured: parity.lowerBound,
      threshold: t,
      conclusive: failed && (parity.upperBound ?? 1) < t,
      message: failed
        ? `${since}parity ${pct(parity.value)} (95% lower bound ${pct(parity.lowerBound)}) is below ${pct(t)} over ${int(parity.compared)} compared calls${sagaSteps(facts)}`
        : `${since}parity ${pct(parity.value)} but its 95% lower bound ${pct(parity.lowerBound)} is below ${pct(t)}: ${needed === null ? 'more' : `about ${int(needed)}`} compared calls needed (have ${int(parity.compared)})`,
    });
  }

  const rateCheck = (criterion: 'maxMissingRate' | 'maxDlqRate' | 'maxBusErrorRate', count: number, what: string) => {
    const max = criteria[criterion];
    if (n === 0) return; // minSamples already explains it
    const rate = count / n;
    if (rate <= max) return;
    reasons.push({
      criterion,
      status: 'fail',
      measured: rate,
      threshold: max,
      conclusive: wilson(count, n).lower > max,
      message: `${since}${what} rate ${pct(rate)} (${int(count)} of ${int(n)}) is above ${pct(max)}`,
    });
  };
  rateCheck('maxMissingRate', evidence.missing.count, 'missing result');
  rateCheck('maxDlqRate', evidence.dlq.count, 'DLQ');
  rateCheck('maxBusErrorRate', evidence.errorBus.count, 'bus error');

  if (criteria.maxBusP99Ms !== null) {
    const bus = facts.latency.bus;
    if (!bus) {
      reasons.push({ criterion: 'maxBusP99Ms', status: 'insufficient', measured: null, threshold: criteria.maxBusP99Ms, conclusive: false, message: 'no bus latency measured yet' });
    } else if (bus.p99 > criteria.maxBusP99Ms) {
      reasons.push({
        criterion: 'maxBusP99Ms',
        status: 'fail',
        measured: bus.p99,
        threshold: criteria.maxBusP99Ms,
        // A percentile from few calls is noisy either way: only minSamples makes it count.
        conclusive: false,
        message: `bus p99 ${ms(bus.p99)} is above ${ms(criteria.maxBusP99Ms)}`,
      });
    }
  }

  const status: VerdictStatus = reasons.some((r) => r.status === 'fail' && (enough || r.conclusive))
    ? 'NOT_READY'
    : reasons.length > 0
      ? 'INSUFFICIENT_DATA'
      : 'READY';
  return { status, reasons, advice: adviseFor(facts, criteria, status, context) };
}

/** On a saga flow, which saga steps made the outcomes differ: `; mismatches at saga order step pay (3)`. */
function sagaSteps(facts: FlowFacts): string {
  const saga = facts.saga;
  if (!saga || saga.mismatchSteps.length === 0) return '';
  return `; mismatches at saga ${saga.name} step ${mismatchStepsText(saga)}`;
}

function adviseFor(facts: FlowFacts, criteria: Criteria, status: VerdictStatus, context: { topic?: string }): Advice[] {
  const advice: Advice[] = [];
  const { direct, bus, busLag } = facts.latency;
  if ((facts.method === 'GET' || facts.method === 'HEAD') && facts.samples > 0) {
    const measured = bus && direct ? ` (p99: direct ${ms(direct.p99)}, bus end to end ${ms(bus.p99)}${busLag ? `, bus lag ${ms(busLag.p99)}` : ''})` : '';
    advice.push({
      code: 'keep-on-rest',
      message: `${facts.method} is a read whose caller waits for the answer; the bus is asynchronous, so this flow is better kept on REST${measured}. Move the writes and events it depends on instead.`,
    });
  }
  const size = facts.eventBytes;
  if (size && size.p95 > criteria.largeEventBytes) {
    advice.push({
      code: 'slim-events',
      message: `events are large (p95 ${bytes(size.p95)}, max ${bytes(size.max)}; advice threshold ${bytes(criteria.largeEventBytes)}): slim them to ids and changed fields and let consumers fetch details (claim check).`,
    });
  }
  if (facts.rpcHeaderMismatches > 0) {
    advice.push({
      code: 'mcp-headers',
      message: `${int(facts.rpcHeaderMismatches)} calls sent Mcp-Method / Mcp-Name headers that disagree with their JSON-RPC body: cutover matched them by the body, the operation the agent runs, but a gateway or agent that trusts the headers does something else. Fix the client, or have the agent refuse such calls.`,
    });
  }
  if (facts.dlq.count > 0) {
    advice.push({ code: 'inspect-dlq', message: `${int(facts.dlq.count)} calls ended in the DLQ: inspect ${context.topic ? `${context.topic}.dlq` : 'the flow topic\u2019s .dlq'} for the errors (${facts.errorCodes.map((e) => e.code).slice(0, 3).join(', ') || 'no error codes recorded'}).` });
  }
  if (status === 'INSUFFICIENT_DATA') {
    const evidence: Segment = facts.change?.after ?? facts;
    const p = evidence.parity.value;
    const needed = p !== null ? samplesNeeded(p, criteria.minParityLowerBound) : samplesNeeded(1, criteria.minParityLowerBound);
    const target = Math.max(criteria.minSamples, needed ?? 0);
    const how = facts.mode === 'direct' ? 'put the flow in shadow mode to collect calls' : 'keep the flow in shadow and collect more calls';
    const basis = p !== null ? 'at the current parity' : 'if every call matches';
    advice.push({ code: 'collect-more', message: `${how}: about ${int(target)} samples are needed ${basis} (have ${int(evidence.samples)}${facts.change ? ` since the change at ${facts.change.at}` : ''}; parity threshold ${criterionValue('minParityLowerBound', criteria.minParityLowerBound)}).` });
  }
  return advice;
}

/** Worst of several verdicts: NOT_READY, then INSUFFICIENT_DATA, then READY. An empty list is INSUFFICIENT_DATA. */
export function worstVerdict(statuses: Iterable<VerdictStatus>): VerdictStatus {
  let seen = false;
  let worst: VerdictStatus = 'READY';
  for (const s of statuses) {
    seen = true;
    if (s === 'NOT_READY') return s;
    if (s === 'INSUFFICIENT_DATA') worst = s;
  }
  return seen ? worst : 'INSUFFICIENT_DATA';
}
