import type { Bus, ReadStream } from '../bus/types.js';
import { ControlError, ErrorCodes } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { FlipJudge, type JudgedFlip } from './judge.js';
import type { FlowMode } from './mode.js';
import type { FlipPolicy } from './policy.js';
import { FLIP_TOPIC, type FlipEntry } from './types.js';

/** The part of the sidecar's FlowTable the follower needs. */
export interface FlowModeTarget {
  get(name: string): unknown;
  setMode(name: string, mode: FlowMode): void;
}

export interface FlipFollowerOptions {
  bus: Bus;
  flows: FlowModeTarget;
  logger?: Logger;
  /** Called after each flip is applied (metrics, tests). */
  onApplied?: (flip: FlipEntry) => void;
  /** Who may flip (the config's `trust:`); without it every well-formed flip is applied. */
  policy?: FlipPolicy | undefined;
  /** The configured mode of each flow: where judging a flow's first flip starts. */
  configModes?: ReadonlyMap<string, FlowMode> | undefined;
  /** Called for each record of a served flow that breaks the policy (skipped, or applied with `enforce: false`). */
  onRejected?: (judged: JudgedFlip) => void;
  /** Wait before re-reading the log after the bus failed a read. Default 1 s. */
  retryDelayMs?: number;
}

/** Applies the flip log to a flow table, from the start of the log and then as flips arrive. */
export interface FlipFollower {
  /** Resolves once every flip in the log when start() began is applied. Rejects only if closed first. */
  start(): Promise<void>;
  /** Flips applied so far (unknown flows and malformed records are not counted). */
  readonly applied: number;
  /** Records of served flows that broke the policy so far. */
  readonly rejected: number;
  /** Stops following. Idempotent. */
  close(): Promise<void>;
}

/**
 * Makes a follower (not started). Boot without gaps: a `follow: true` read from the start applies every
 * flip, and a `follow: false` read taken at the same time tells which positions make up "the log as it is
 * now"; start() resolves once the follower has applied all of those. A flip published in between is seen
 * by the following read whatever the snapshot holds, so nothing is missed.
 */
export function createFlipFollower(options: FlipFollowerOptions): FlipFollower {
  const logger = (options.logger ?? silentLogger()).child({ component: 'flip-follower' });
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  // Positions already applied: after a failed read the log is read again from the start, and re-applying
  // old flips would briefly put flows back in old modes while traffic runs.
  const done = new Set<string>();
  // Flows of other sidecars: normal when each sidecar serves some flows, so said once per flow at debug level.
  const seenUnknown = new Set<string>();
  let applied = 0;
  let rejected = 0;
  let closed = false;
  // One judge for the whole run: it tracks each flow's current mode, which directions are judged against.
  const judge = new FlipJudge(options.policy, options.configModes);
  // Verified reads skip records that fail; with a policy the follower sees them to log and count them.
  const readOptions = { from: 'start' as const, rejected: options.policy !== undefined };
  let stream: ReadStream | undefined;
  let loop: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeRetry: (() => void) | undefined;
  let snapshot: Set<string> | undefined;
  let markReady: (() => void) | undefined;
  let failReady: ((err: unknown) => void) | undefined;
  let starting: Promise<void> | undefined;

  const checkReady = (): void => {
    if (!snapshot || !markReady) return;
    for (const position of snapshot) if (!done.has(position)) return;
    snapshot = undefined;
    markReady();
    markReady = undefined;
  };

  const apply = (judged: JudgedFlip): void => {
    const { flip, rejection } = judged;
    if (options.flows.get(flip.flow) === undefined) {
      if (!seenUnknown.has(flip.flow)) {
        seenUnknown.add(flip.flow);
        logger.debug({ flow: flip.flow, to: flip.to, flipId: flip.id }, 'flip of a flow this sidecar does not serve: skipped');
      }
      return;
    }
    if (rejection) {
      rejected++;
      const fields = { flow: flip.flow, from: flip.from, to: flip.to, who: flip.who, signer: judged.signer, reason: rejection.reason, flipId: flip.id, position: flip.position };
      options.onRejected?.(judged);
      // The follower that reports rejections (the sidecar's) warns; another one in the same process (the
      // rollback watch) would only repeat the line.
      const level = options.onRejected ? 'warn' : 'debug';
      if (!judged.applied) {
        logger[level](fields, `flip rejected: ${rejection.message}`);
        return;
      }
      logger[level](fields, `flip breaks the control policy, applied anyway (trust.enforce is off): ${rejection.message}`);
    }
    options.flows.setMode(flip.flow, flip.to);
    applied++;
    logger.info({ flow: flip.flow, from: flip.from, to: flip.to, who: flip.who, forced: flip.forced, flipId: flip.id }, 'flip applied');
    options.onApplied?.(flip);
  };

  const follow = async (): Promise<void> => {
    while (!closed) {
      try {
        stream = options.bus.read(FLIP_TOPIC, { ...readOptions, follow: true });
        for await (const delivery of stream) {
          if (closed) break;
          if (done.has(delivery.position)) continue;
          const judged = judge.judge(delivery);
          if (judged) apply(judged);
          else logger.warn({ position: delivery.position, type: delivery.event.type }, 'skipping a control event that is not a valid flip');
          done.add(delivery.position);
          checkReady();
        }
        if (closed) return;
        logger.warn('flip log reader ended; reading again');
      } catch (err) {
        if (closed) return;
        logger.warn({ err }, 'reading the flip log failed; retrying');
      } finally {
        await stream?.close().catch(() => undefined);
        stream = undefined;
      }
      await new Promise<void>((resolve) => {
        wakeRetry = resolve;
        retryTimer = setTimeout(resolve, retryDelayMs);
      });
      wakeRetry = undefined;
    }
  };

  const readSnapshot = async (): Promise<Set<string>> => {
    for (;;) {
      const positions = new Set<string>();
      const s = options.bus.read(FLIP_TOPIC, { ...readOptions, follow: false });
      try {
        for await (const d of s) positions.add(d.position);
        return positions;
      } catch (err) {
        if (closed) return positions;
        logger.warn({ err }, 'reading the flip log snapshot failed; retrying');
      } finally {
        await s.close().catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, retryDelayMs));
    }
  };

  return {
    get applied() {
      return applied;
    },
    get rejected() {
      return rejected;
    },
    start() {
      starting ??= new Promise<void>((resolve, reject) => {
        markReady = resolve;
        failReady = reject;
        loop = follow();
        readSnapshot().then(
          (positions) => {
            snapshot = positions;
            checkReady();
            if (!snapshot) logger.info({ flips: positions.size }, 'flip log applied');
          },
          (err: unknown) => reject(err),
        );
      });
      return starting;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer);
      wakeRetry?.();
      failReady?.(new ControlError(ErrorCodes.BUS_CLOSED, 'flip follower closed before the flip log was applied'));
      await stream?.close().catch(() => undefined);
      await loop;
    },
  };
}

/** Creates a follower and resolves once the existing log is applied. */
export async function startFlipFollower(options: FlipFollowerOptions): Promise<FlipFollower> {
  const follower = createFlipFollower(options);
  await follower.start();
  return follower;
}
