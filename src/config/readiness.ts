import { z } from 'zod';

/** Thresholds in force for one flow after the flow's `readiness:` overrides were applied to the defaults. */
export interface Criteria {
  minSamples: number;
  minParityLowerBound: number;
  maxMissingRate: number;
  maxDlqRate: number;
  maxBusErrorRate: number;
  /** `null` when not gated. */
  maxBusP99Ms: number | null;
  /** Advice only: p95 event size above which the report advises slimming events. */
  largeEventBytes: number;
}

/** Defaults of the readiness criteria. */
export const READINESS_DEFAULTS: Criteria = {
  minSamples: 1000,
  minParityLowerBound: 0.999,
  maxMissingRate: 0.001,
  maxDlqRate: 0.001,
  maxBusErrorRate: 0.001,
  maxBusP99Ms: null,
  largeEventBytes: 64 * 1024,
};

const rate = z.number().min(0, 'expected a rate between 0 and 1').max(1, 'expected a rate between 0 and 1');

const criteriaShape = {
  /** Fewer records than this is INSUFFICIENT_DATA, never READY. */
  minSamples: z.number().int('expected a whole number').min(1, 'expected at least 1'),
  /** The 95% Wilson lower bound of match / (match + mismatch) must reach this. */
  minParityLowerBound: rate,
  /** (missing_bus + missing_direct) / samples must not exceed this. */
  maxMissingRate: rate,
  /** Calls whose bus side ended in a DLQ, over samples. */
  maxDlqRate: rate,
  /** error_bus / samples (DLQ'd calls are bus errors too). */
  maxBusErrorRate: rate,
  /** Bus path p99 end-to-end latency ceiling in ms; `null` switches the criterion off. */
  maxBusP99Ms: z.number().positive('expected a positive number of milliseconds').nullable(),
  /** Advice only: p95 event size in bytes above which the report advises slimming events. */
  largeEventBytes: z.number().int('expected a whole number').positive('expected a positive number of bytes'),
};

/**
 * Top-level `readiness:` key: defaults for every flow. Missing keys take {@link READINESS_DEFAULTS}.
 * Wire it as `readiness: readinessSchema.default({})` in the config schema.
 */
export const readinessSchema = z
  .object({
    minSamples: criteriaShape.minSamples.default(READINESS_DEFAULTS.minSamples),
    minParityLowerBound: criteriaShape.minParityLowerBound.default(READINESS_DEFAULTS.minParityLowerBound),
    maxMissingRate: criteriaShape.maxMissingRate.default(READINESS_DEFAULTS.maxMissingRate),
    maxDlqRate: criteriaShape.maxDlqRate.default(READINESS_DEFAULTS.maxDlqRate),
    maxBusErrorRate: criteriaShape.maxBusErrorRate.default(READINESS_DEFAULTS.maxBusErrorRate),
    maxBusP99Ms: criteriaShape.maxBusP99Ms.default(READINESS_DEFAULTS.maxBusP99Ms),
    largeEventBytes: criteriaShape.largeEventBytes.default(READINESS_DEFAULTS.largeEventBytes),
  })
  .strict();

/**
 * A flow's `readiness:` key: overrides of the top-level defaults, key by key. No defaults here, so an
 * absent key inherits. `maxBusP99Ms: null` switches a top-level latency gate off for this flow.
 * Wire it as `readiness: flowReadinessSchema.optional()` in the flow schema.
 */
export const flowReadinessSchema = z
  .object({
    minSamples: criteriaShape.minSamples.optional(),
    minParityLowerBound: criteriaShape.minParityLowerBound.optional(),
    maxMissingRate: criteriaShape.maxMissingRate.optional(),
    maxDlqRate: criteriaShape.maxDlqRate.optional(),
    maxBusErrorRate: criteriaShape.maxBusErrorRate.optional(),
    maxBusP99Ms: criteriaShape.maxBusP99Ms.optional(),
    largeEventBytes: criteriaShape.largeEventBytes.optional(),
  })
  .strict();

export type ReadinessConfig = z.infer<typeof readinessSchema>;
export type ReadinessInput = z.input<typeof readinessSchema>;
export type FlowReadinessConfig = z.infer<typeof flowReadinessSchema>;

/** The criteria in force for one flow: its overrides on top of the defaults. */
export function resolveCriteria(defaults: ReadinessConfig = READINESS_DEFAULTS, override: FlowReadinessConfig | undefined = undefined): Criteria {
  const merged: Criteria = { ...READINESS_DEFAULTS, ...defaults };
  if (!override) return merged;
  for (const [key, value] of Object.entries(override) as Array<[keyof Criteria, Criteria[keyof Criteria] | undefined]>) {
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  return merged;
}
