import type { CallResult } from './traffic.js';

/**
 * The documented crash-loss bound of the sidecar (docs/sidecar.md, Durability): with `spool.durability`
 * `interval` (the default) or `strict`, a SIGKILL loses at most the events of the last 100 ms before the
 * kill. CUTOVER_FAULTS_CRASH_WINDOW_MS overrides it; the one line to adjust when the docs change is this.
 */
export const COMMIT_INTERVAL_MS = Number(process.env.CUTOVER_FAULTS_CRASH_WINDOW_MS ?? 100);

/**
 * Events a SIGKILL at `killAt` may lose: those of the calls that completed within the window before it (a
 * call event and an observation each). A call completed earlier had both events journaled before the kill.
 */
export function crashLossBound(results: readonly CallResult[], killAt: number, intervalMs = COMMIT_INTERVAL_MS): number {
  return 2 * results.filter((r) => r.status === 200 && r.doneAt <= killAt && r.doneAt > killAt - intervalMs).length;
}
