import type { Delivery } from '../bus/types.js';
import { ErrorCodes } from '../errors.js';
import { flipFromDelivery } from './record.js';
import { isGated, modeRank, type FlowMode } from './mode.js';
import { isOperator, type FlipPolicy } from './policy.js';
import type { FlipEntry } from './types.js';

/** Why a follower did not apply a flip record (the `reason` label of `cutover_flips_rejected_total`). */
export type FlipRejectionReason = 'unsigned' | 'bad_signature' | 'unknown_agent' | 'not_operator' | 'automatic_towards_bus' | 'no_evidence' | 'not_ready';

export interface FlipRejection {
  reason: FlipRejectionReason;
  message: string;
}

/** A flip record as a follower judged it. */
export interface JudgedFlip {
  flip: FlipEntry;
  /** The verified signing agent; null when unsigned, unverified, or read without a trust. */
  signer: string | null;
  /** Why the record breaks the policy; null when it does not. */
  rejection: FlipRejection | null;
  /** Whether followers apply it: no rejection, or the policy only warns (`trust.enforce: false`). */
  applied: boolean;
}

const SIGNATURE_REASONS: Readonly<Record<string, FlipRejectionReason>> = {
  [ErrorCodes.AUTH_UNSIGNED]: 'unsigned',
  [ErrorCodes.AUTH_BAD_SIGNATURE]: 'bad_signature',
  [ErrorCodes.AUTH_UNKNOWN_AGENT]: 'unknown_agent',
  // A trusted identity that acl: does not let write the flip log: as good as no operator.
  [ErrorCodes.AUTH_TOPIC_DENIED]: 'not_operator',
};

/**
 * Judges the flip log in order, as every follower does, so all of them agree on which records count.
 * Rules with a policy (a `trust:` section):
 * - the record must verify, and be signed (an unsigned producer allowed by `allowUnsigned` is not enough);
 * - signed by an operator: any move, subject to the evidence rule;
 * - signed by another trusted agent (a sidecar): only `automatic: true`, not forced, moving the flow away
 *   from the bus relative to its current mode (or leaving it there: replicas that decide together each
 *   write the same rollback): what the automatic rollback writes, so a stolen sidecar key can only roll
 *   flows back;
 * - evidence: a gated move (towards the bus, except direct → shadow) needs a report summary with verdict
 *   READY, or `forced: true` (which only an operator may sign).
 * Directions are judged against the flow's current mode as this log has set it (its config mode before any
 * flip), never the record's own `from`, which the writer chose. Without a policy every flip is applied.
 */
export class FlipJudge {
  private readonly modes: Map<string, FlowMode>;

  constructor(
    private readonly policy: FlipPolicy | undefined,
    configModes: ReadonlyMap<string, FlowMode> = new Map(),
  ) {
    this.modes = new Map(configModes);
  }

  /** The next record of the log; undefined when it is not a well-formed flip (readers skip those). */
  judge(delivery: Delivery): JudgedFlip | undefined {
    const flip = flipFromDelivery(delivery);
    if (!flip) return undefined;
    const verification = delivery.verification;
    const signer = verification?.ok === true ? (verification.agent ?? null) : null;
    const rejection = this.policy ? this.check(flip, delivery, signer, this.policy) : null;
    const applied = rejection === null || this.policy?.enforce === false;
    if (applied) this.modes.set(flip.flow, flip.to);
    return { flip, signer, rejection, applied };
  }

  private check(flip: FlipEntry, delivery: Delivery, signer: string | null, policy: FlipPolicy): FlipRejection | null {
    const what = `flip ${flip.id} of ${flip.flow} (${flip.from} -> ${flip.to})`;
    const verification = delivery.verification;
    if (verification?.ok === false) return { reason: SIGNATURE_REASONS[verification.code] ?? 'bad_signature', message: `${what}: ${verification.reason}` };
    if (signer === null) return { reason: 'unsigned', message: `${what} is not signed: followers apply only flips signed by an operator` };
    const current = this.modes.get(flip.flow) ?? flip.from;
    if (!isOperator(policy, signer)) {
      if (flip.automatic !== true || flip.forced) {
        return { reason: 'not_operator', message: `${what} is signed by ${JSON.stringify(signer)}, which trust.operators does not list: a non-operator may write only automatic rollbacks` };
      }
      // Equal: the flow is there already, typically a second replica's copy of the same rollback; harmless.
      if (modeRank(flip.to) > modeRank(current)) {
        return { reason: 'automatic_towards_bus', message: `${what} is an automatic flip by non-operator ${JSON.stringify(signer)} that does not move the flow away from the bus (it is in ${current})` };
      }
      return null;
    }
    if (!isGated(current, flip.to) || flip.forced) return null;
    if (flip.report === null) return { reason: 'no_evidence', message: `${what} moves the flow towards the bus from ${current} with no report summary and is not forced` };
    if (flip.report.verdict !== 'READY') return { reason: 'not_ready', message: `${what} moves the flow towards the bus from ${current} on a ${flip.report.verdict} verdict and is not forced` };
    return null;
  }
}
