import { z } from 'zod';

/**
 * A flow's mode, in the order a cutover walks: `direct` (observe only) → `shadow` (dual-write, compare)
 * → `canary:<N>` (N% of calls served by the bus path, chosen by a stable hash of the partition key) → `bus`.
 * Kept as the string users type (config, CLI, flip log), parsed where behaviour depends on it.
 */
export type FlowMode = 'direct' | 'shadow' | 'bus' | `canary:${number}`;

export type ParsedMode = { kind: 'direct' } | { kind: 'shadow' } | { kind: 'canary'; percent: number } | { kind: 'bus' };

const CANARY = /^canary:(\d{1,2})$/;

/** Parses a mode string; undefined when it is not one (canary percent must be 1-99). */
export function parseMode(value: string): ParsedMode | undefined {
  if (value === 'direct' || value === 'shadow' || value === 'bus') return { kind: value };
  const m = CANARY.exec(value);
  if (!m) return undefined;
  const percent = Number(m[1]);
  return percent >= 1 && percent <= 99 ? { kind: 'canary', percent } : undefined;
}

export function isFlowMode(value: string): value is FlowMode {
  return parseMode(value) !== undefined;
}

/** Percent of calls the bus path serves: 0 for direct and shadow, N for canary:N, 100 for bus. */
export function busShare(mode: FlowMode): number {
  const p = parseMode(mode)!;
  return p.kind === 'canary' ? p.percent : p.kind === 'bus' ? 100 : 0;
}

/** Position on the road to the bus: direct 0 < shadow 1 < canary:N (1 + N/100) < bus 3. */
export function modeRank(mode: FlowMode): number {
  const p = parseMode(mode)!;
  switch (p.kind) {
    case 'direct':
      return 0;
    case 'shadow':
      return 1;
    case 'canary':
      return 1 + p.percent / 100;
    case 'bus':
      return 3;
  }
}

/** True when `to` moves traffic further towards the bus than `from` (those flips are gated). */
export function isTowardsBus(from: FlowMode, to: FlowMode): boolean {
  return modeRank(to) > modeRank(from);
}

/** True when a flip from → to needs a READY verdict: towards the bus, except direct → shadow (it only observes). */
export function isGated(from: FlowMode, to: FlowMode): boolean {
  if (!isTowardsBus(from, to)) return false;
  return !(from === 'direct' && to === 'shadow');
}

export const FLOW_MODE_HELP = 'expected direct, shadow, canary:<1-99> or bus';

/** zod type for a mode in config and API bodies. */
export const flowModeSchema = z.string().refine(isFlowMode, FLOW_MODE_HELP).transform((v) => v as FlowMode);
