import { z } from 'zod';
import { httpUrl } from './fields.js';
import { durationSchema } from '../duration.js';

/**
 * Config of the shadow side, validated once at boot. The lead wires these into src/config/schema.ts:
 * - per flow: `shadow:`, `compare:`, `noise:` ({@link flowShadowKeys}, to `.extend()` the flow object);
 * - top level: `shadow:` ({@link shadowConfigSchema}).
 */


/** A JSON pointer into the compared document (`/status`, `/headers/<name>`, `/body/...`); `*` matches one level. */
export const pointerPatternSchema = z
  .string()
  .regex(/^\/(status|headers|body)(\/.*)?$/, 'expected a JSON pointer starting with /body, /status or /headers (like /body/items/*/price)');

const toleranceValue = z.union([
  z.number().nonnegative(),
  z.string().regex(/^\d+(\.\d+)?%$/, 'expected a non-negative number (absolute) or a percentage like "1%" (relative)'),
]);

const backoffSchema = z
  .object({
    initialMs: z.number().int().positive().optional(),
    maxMs: z.number().int().positive().optional(),
    multiplier: z.number().min(1).optional(),
  })
  .strict();

/** Flow `shadow:`: where the delivery consumer sends the rebuilt request. Omit `target` when a bus-native agent replies. */
export const flowShadowSchema = z
  .object({
    target: httpUrl.optional(),
    /** Per request to the shadow target; a timeout counts as a retriable failure. */
    timeout: durationSchema.default('5s'),
    /** Keys delivered in parallel by one consumer (per-key order always holds). */
    concurrency: z.number().int().min(1).max(1024).default(16),
    /** Attempts (first try included) before the event goes to `<topic>.dlq`. */
    maxAttempts: z.number().int().min(1).max(100).default(5),
    backoff: backoffSchema.optional(),
  })
  .strict();

/** An `unordered:` entry: a pointer, or `{ path, key }` to match elements by one of their fields. */
export const unorderedSchema = z.union([pointerPatternSchema, z.object({ path: pointerPatternSchema, key: z.string().min(1) }).strict()]);

/** Flow `compare:`: the diff rules for this flow's pairs. */
export const flowCompareSchema = z
  .object({
    /** Paths never compared (timestamps, generated ids). */
    ignore: z.array(pointerPatternSchema).default([]),
    /** Numeric tolerance per path: absolute (`0.01`) or relative to the direct value (`"1%"`). */
    tolerance: z.record(pointerPatternSchema, toleranceValue).default({}),
    /** Arrays whose order does not matter. */
    unordered: z.array(unorderedSchema).default([]),
    /** Compare status codes (default true). */
    status: z.boolean().default(true),
    /** Response headers to compare (case-insensitive). None by default: the two paths legitimately differ in most. */
    headers: z.array(z.string().min(1).transform((h) => h.toLowerCase())).default([]),
    /**
     * Flows with `match.rpc`: ignore the JSON-RPC `id` and the ids and timestamps an A2A server generates
     * (task, context, message and artifact ids, `status.timestamp`; the full list in docs/a2a-mcp.md).
     * Default true; set false to compare them.
     */
    rpcIds: z.boolean().default(true),
    /** Most differences kept in one parity record. */
    maxDiffs: z.number().int().min(1).max(1000).default(20),
  })
  .strict();

/** Flow `noise:`: the Diffy-style baseline of differences between two direct calls. */
export const flowNoiseSchema = z
  .object({
    /** Share of safe-method requests the sidecar sends to the agent twice. */
    sample: z.number().min(0).max(1),
    /**
     * Noise samples the comparator waits for before it decides a mismatch of this flow: until then a
     * mismatching pair is held (at most the window), so that early calls are not reported on a noise
     * baseline that is still empty.
     */
    warmup: z.number().int().min(0).max(10_000).default(3),
  })
  .strict();

/** The shadow side's keys of a flow (`shadow`, `saga`, `compare`, `noise`): `flowObjectSchema.extend(flowShadowKeys)`. */
export const flowShadowKeys = {
  shadow: flowShadowSchema.optional(),
  /**
   * The saga (a name under `sagas:`) that stands for this flow on the bus: the shadow side begins it for
   * each call event of the flow (in shadow mode while the flow is in shadow) and answers the call with
   * its outcome, so the REST chain behind the flow is compared with the saga that replaces it.
   */
  saga: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a saga name like order').optional(),
  compare: flowCompareSchema.default({}),
  noise: flowNoiseSchema.optional(),
};

/** Where delivery consumers and SDK agents record handled event ids. Default: chosen by bus kind (docs/shadow.md). */
export const dedupeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('redis'), url: z.string().url(), prefix: z.string().default('cutover:dedupe:') }).strict(),
  z.object({ kind: z.literal('sqlite'), path: z.string().min(1) }).strict(),
  z.object({ kind: z.literal('memory') }).strict(),
]);

/** Top-level `shadow:`. */
export const shadowConfigSchema = z
  .object({
    /** Run delivery consumers and comparator inside the sidecar. Default: true on the embedded bus, else false. */
    inProcess: z.boolean().optional(),
    /** How long the comparator waits for the other side of a pair before recording missing_bus / missing_direct. */
    window: durationSchema.default('30s'),
    /** Open pairs held in memory at most; beyond it the oldest is dropped and counted as overflow. */
    maxOpenPairs: z.number().int().min(1).default(100_000),
    /** How long a handled event id is remembered (redeliveries later than this are handled again). */
    dedupeTtl: durationSchema.default('1d'),
    dedupe: dedupeSchema.optional(),
    /** Run the comparator (`cutover shadow` may run delivery consumers only, to scale them apart). */
    comparator: z.boolean().default(true),
    /**
     * The comparator also reads the shared topic `observationsTopic`, where sidecars that predate per-flow
     * observation topics publish every flow's observations. Turn it on while such sidecars still run (a
     * rolling upgrade), off once they are gone: each comparator group then reads only its flow's topic.
     */
    sharedObservations: z.boolean().default(false),
  })
  .strict();

export type FlowShadowOptions = z.infer<typeof flowShadowSchema>;
export type FlowCompareOptions = z.infer<typeof flowCompareSchema>;
export type FlowCompareInput = z.input<typeof flowCompareSchema>;
export type FlowNoiseOptions = z.infer<typeof flowNoiseSchema>;
export type ShadowConfig = z.infer<typeof shadowConfigSchema>;
export type DedupeConfig = z.infer<typeof dedupeSchema>;

/** Whether the sidecar should run the shadow side in-process: explicit setting, else only on the embedded bus. */
export function shadowInProcess(config: { bus: { kind: string }; shadow?: { inProcess?: boolean } }): boolean {
  return config.shadow?.inProcess ?? config.bus.kind === 'embedded';
}
