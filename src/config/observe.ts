import { z } from 'zod';
import { durationSchema } from '../duration.js';
import { byteSizeSchema } from './sidecar.js';

/**
 * Top-level `observe:` — discovery. The sidecar watches the calls it forwards, matched to a flow or not,
 * and groups them into candidate flows (method, inferred path template, JSON-RPC method) with volume,
 * errors, latency, payload shapes and candidate keys. Nothing is published for it: the summary is written
 * to `<dataDir>/discovery/<agent>.json` and served on the admin API (`GET /discovery`); `cutover discover`
 * reads it. Memory and cost are bounded by the sampling rate and the caps below.
 */
export const observeSchema = z
  .object({
    /** Share of calls recorded (0-1); the rest are only counted. */
    sample: z.number().min(0).max(1).default(1),
    /** Most candidate flows kept; sampled calls of further ones are counted as overflow. */
    maxTemplates: z.number().int().min(1).max(10_000).default(200),
    /** Example calls kept per candidate (bodies are kept in the summary file: mind what they hold). */
    maxSamples: z.number().int().min(0).max(100).default(3),
    /** Bodies larger than this are not parsed for shapes and keys (the call still counts). */
    maxBodyBytes: byteSizeSchema.default('64KiB'),
    /** Literal path segments fold into a parameter once this many paths differ only there (`/products/red-shoe`). */
    foldAfter: z.number().int().min(2).max(1_000).default(8),
    /** How often the summary is written to the data dir (and at shutdown). */
    writeInterval: durationSchema.default('10s'),
  })
  .strict();

export type ObserveConfig = z.infer<typeof observeSchema>;
