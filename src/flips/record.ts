import { z } from 'zod';
import type { Delivery } from '../bus/types.js';
import { flowModeSchema } from './mode.js';
import { FLIP_EVENT_TYPE, type FlipEntry, type FlipRecord } from './types.js';

const reasonSchema = z.object({
  criterion: z.string(),
  status: z.enum(['fail', 'insufficient']),
  measured: z.number().nullable(),
  threshold: z.number(),
  message: z.string(),
});

const summarySchema = z.object({
  verdict: z.enum(['READY', 'NOT_READY', 'INSUFFICIENT_DATA']),
  reasons: z.array(reasonSchema),
  samples: z.number(),
  parity: z.number().nullable(),
  parityLowerBound: z.number().nullable(),
  missingRate: z.number().nullable(),
  busErrorRate: z.number().nullable(),
  busP99Ms: z.number().nullable(),
  basis: z.enum(['all', 'canary']),
  since: z.string().nullable(),
  generatedAt: z.string(),
  /** Written since change points exist; absent in older records. */
  changeAt: z.string().nullable().optional(),
});

/** Lenient on extra keys (a newer writer may add some), strict on what followers act on. */
export const flipRecordSchema = z.object({
  flow: z.string().min(1),
  from: flowModeSchema,
  to: flowModeSchema,
  reason: z.string().nullable(),
  who: z.string(),
  at: z.string(),
  forced: z.boolean(),
  report: summarySchema.nullable(),
  /** Written by the automatic rollback; absent in operators' flips. */
  automatic: z.boolean().optional(),
});

/**
 * Turns a delivery from `cutover.control` into a flip, or undefined when it is not one (another event
 * type on the control topic, or a malformed record: those are skipped by readers, never applied).
 */
export function flipFromDelivery(delivery: Delivery): FlipEntry | undefined {
  if (delivery.event.type !== FLIP_EVENT_TYPE) return undefined;
  const parsed = flipRecordSchema.safeParse(delivery.event.data);
  if (!parsed.success) return undefined;
  return { ...(parsed.data as FlipRecord), id: delivery.event.id, position: delivery.position };
}
