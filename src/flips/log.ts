import os from 'node:os';
import { z } from 'zod';
import type { Bus, Delivery } from '../bus/types.js';
import { buildEvent } from '../events/cloudevent.js';
import { ErrorCodes, ValidationError } from '../errors.js';
import { flowModeSchema, type FlowMode } from './mode.js';
import { FLIP_EVENT_TYPE, FLIP_SOURCE, FLIP_TOPIC, type FlipEntry, type FlipRecord } from './types.js';

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
const flipRecordSchema = z.object({
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

/** `$USER@hostname`, the default `who` of a flip. */
export function defaultWho(env: NodeJS.ProcessEnv = process.env): string {
  const user = env.USER ?? env.USERNAME ?? (() => {
    try {
      return os.userInfo().username;
    } catch {
      return 'unknown';
    }
  })();
  return `${user}@${os.hostname()}`;
}

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

/**
 * Appends a flip to the log. Resolves once the bus durably holds it (publish semantics); followers apply
 * it from there. Keyed by flow name so one flow's flips keep their order on every adapter.
 */
export async function appendFlip(bus: Bus, record: FlipRecord, options: { id?: string } = {}): Promise<FlipRecord & { id: string }> {
  const checked = flipRecordSchema.safeParse(record);
  if (!checked.success) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `invalid flip record: ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const event = buildEvent({ source: FLIP_SOURCE, type: FLIP_EVENT_TYPE, subject: record.flow, time: record.at, cutoverflow: record.flow, data: record, ...(options.id ? { id: options.id } : {}) });
  await bus.publish(FLIP_TOPIC, [{ key: record.flow, event }]);
  return { ...record, id: event.id };
}

/** Every flip in the log up to its current end, in log order; only `flow`'s when given. */
export async function readFlips(bus: Bus, options: { flow?: string } = {}): Promise<FlipEntry[]> {
  const out: FlipEntry[] = [];
  const stream = bus.read(FLIP_TOPIC, { from: 'start', follow: false });
  try {
    for await (const delivery of stream) {
      const flip = flipFromDelivery(delivery);
      if (flip && (options.flow === undefined || flip.flow === options.flow)) out.push(flip);
    }
  } finally {
    await stream.close();
  }
  return out;
}

/** The current mode of each flow: its last flip's `to`, else the config's mode. */
export function currentModes(flips: readonly FlipEntry[], configModes: ReadonlyMap<string, FlowMode>): Map<string, FlowMode> {
  const modes = new Map(configModes);
  for (const flip of flips) if (modes.has(flip.flow)) modes.set(flip.flow, flip.to);
  return modes;
}

/** When the flow last entered its current canary phase: the first flip of the trailing run of canary modes. */
export function canarySince(flips: readonly FlipEntry[], flow: string): string | null {
  const own = flips.filter((f) => f.flow === flow);
  let since: string | null = null;
  for (let i = own.length - 1; i >= 0; i--) {
    const flip = own[i]!;
    if (!flip.to.startsWith('canary:')) break;
    since = flip.at;
  }
  return since;
}

/** Current modes of the configured flows: the config's `mode`, overridden by the flip log. */
export async function modesFromLog(bus: Bus, flows: ReadonlyArray<{ name: string; mode: FlowMode }>): Promise<Map<string, FlowMode>> {
  return currentModes(await readFlips(bus), new Map(flows.map((f) => [f.name, f.mode])));
}
