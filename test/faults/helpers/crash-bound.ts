import type { CallResult } from './traffic.js';

/**
 * The documented crash-loss bound of the spool: a SIGKILL loses the events of at most one
 * `spool.commitInterval` (default 10 ms). CUTOVER_FAULTS_COMMIT_INTERVAL_MS follows a config that sets
 * another interval; the one line to adjust when the docs change is this default.
 */
export const COMMIT_INTERVAL_MS = Number(process.env.CUTOVER_FAULTS_COMMIT_INTERVAL_MS ?? 10);

/**
 * Events a SIGKILL at `killAt` may lose: those of the calls that completed within the last commit interval
 * before it (a call event and an observation each). A call completed earlier had both events created at
 * least one interval before the kill, so they were committed.
 */
export function crashLossBound(results: readonly CallResult[], killAt: number, intervalMs = COMMIT_INTERVAL_MS): number {
  return 2 * results.filter((r) => r.status === 200 && r.doneAt <= killAt && r.doneAt > killAt - intervalMs).length;
}
