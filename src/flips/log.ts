import os from 'node:os';
import type { Bus } from '../bus/types.js';
import { buildEvent } from '../events/cloudevent.js';
import { signEvent, type Signer } from '../events/signature.js';
import { ErrorCodes, ValidationError } from '../errors.js';
import { FlipJudge, type JudgedFlip } from './judge.js';
import type { FlowMode } from './mode.js';
import type { FlipPolicy } from './policy.js';
import { flipRecordSchema } from './record.js';
import { FLIP_EVENT_TYPE, FLIP_SOURCE, FLIP_TOPIC, type FlipEntry, type FlipRecord } from './types.js';

export { flipFromDelivery } from './record.js';

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
 * Appends a flip to the log. Resolves once the bus durably holds it (publish semantics); followers apply
 * it from there. Keyed by flow name so one flow's flips keep their order on every adapter. With `signer`
 * the record is signed with that key (an operator's), whatever key the bus itself signs with.
 */
export async function appendFlip(bus: Bus, record: FlipRecord, options: { id?: string; signer?: Signer | undefined } = {}): Promise<FlipRecord & { id: string }> {
  const checked = flipRecordSchema.safeParse(record);
  if (!checked.success) {
    throw new ValidationError(ErrorCodes.EVENT_INVALID, `invalid flip record: ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const built = buildEvent({ source: FLIP_SOURCE, type: FLIP_EVENT_TYPE, subject: record.flow, time: record.at, cutoverflow: record.flow, data: record, ...(options.id ? { id: options.id } : {}) });
  const event = options.signer ? signEvent(built, FLIP_TOPIC, options.signer) : built;
  await bus.publish(FLIP_TOPIC, [{ key: record.flow, event }]);
  return { ...record, id: event.id };
}

/** How a reader judges the log: the trust's flip policy and the config's modes (where judging starts). */
export interface FlipReadOptions {
  /** Only this flow's flips in the result (the whole log is judged either way). */
  flow?: string | undefined;
  policy?: FlipPolicy | undefined;
  configModes?: ReadonlyMap<string, FlowMode> | undefined;
}

/**
 * Every flip record in the log up to its current end, in log order, each judged under `policy` (applied or
 * rejected, and why): what `cutover history` shows. Records that fail verification are read too.
 */
export async function readFlipLog(bus: Bus, options: FlipReadOptions = {}): Promise<JudgedFlip[]> {
  const judge = new FlipJudge(options.policy, options.configModes);
  const out: JudgedFlip[] = [];
  const stream = bus.read(FLIP_TOPIC, { from: 'start', follow: false, rejected: options.policy !== undefined });
  try {
    for await (const delivery of stream) {
      const judged = judge.judge(delivery);
      if (judged && (options.flow === undefined || judged.flip.flow === options.flow)) out.push(judged);
    }
  } finally {
    await stream.close();
  }
  return out;
}

/** The flips followers apply, up to the log's current end, in log order; only `flow`'s when given. */
export async function readFlips(bus: Bus, options: FlipReadOptions = {}): Promise<FlipEntry[]> {
  return (await readFlipLog(bus, options)).filter((j) => j.applied).map((j) => j.flip);
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
export async function modesFromLog(bus: Bus, flows: ReadonlyArray<{ name: string; mode: FlowMode }>, policy?: FlipPolicy): Promise<Map<string, FlowMode>> {
  const configModes = new Map(flows.map((f) => [f.name, f.mode]));
  return currentModes(await readFlips(bus, { policy, configModes }), configModes);
}
