import { randomUUID } from 'node:crypto';
import type { BusMessage } from '../src/bus/types.js';
import type { FieldDiff } from '../src/parity/types.js';
import { diffResults, type CompiledRules, type ComparableResult } from './diff.js';
import { ObservationTypes } from '../src/events/wire.js';
import { generalizePointer, parsePointer, RuleTrie } from './pointer.js';

/**
 * The noise baseline, after Diffy: for a share of safe-method requests the sidecar calls the agent a
 * second time and publishes that result as `cutover.observation.direct.noise`. Whatever differs between
 * two direct calls of one request (random ids, timestamps) is noise for the flow: excluded from parity and
 * listed in the records.
 */

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * For the sidecar: whether to call the agent a second time for this request. Only safe methods are ever
 * sampled (a second POST would repeat a side effect). `random` is injectable for tests.
 */
export function shouldSampleNoise(noise: { sample: number } | undefined, method: string, random: () => number = Math.random): boolean {
  if (!noise || noise.sample <= 0) return false;
  if (!SAFE_METHODS.has(method.toUpperCase())) return false;
  return noise.sample >= 1 || random() < noise.sample;
}

/**
 * For the sidecar: turns the direct observation message of the second call (built like the first one,
 * with the second response's data) into the noise observation: same correlation id and key, its own id,
 * type `cutover.observation.direct.noise`.
 */
export function toNoiseObservation(directMessage: BusMessage): BusMessage {
  return { ...directMessage, event: { ...directMessage.event, id: randomUUID(), type: ObservationTypes.noise } };
}

/** Where an A2A result sits in a JSON-RPC response: the result itself (0.3), or its `task` / `message` (1.0). */
const RPC_RESULT_ROOTS = ['/body/result', '/body/result/task', '/body/result/message'];
/** Ids and timestamps an A2A server makes up for each call, under a result root. */
const RPC_GENERATED = [
  'id',
  'contextId',
  'taskId',
  'messageId',
  'status/timestamp',
  'status/message/messageId',
  'status/message/taskId',
  'status/message/contextId',
  'artifacts/*/artifactId',
  'history/*/messageId',
  'history/*/taskId',
  'history/*/contextId',
  // The messages of a streamed answer, as the comparator folds it (shadow/stream.ts).
  'messages/*/messageId',
  'messages/*/taskId',
  'messages/*/contextId',
];

/**
 * The compare rule of JSON-RPC flows (`compare.rpcIds`, on by default): the response `id` (it only echoes
 * the caller's) and what an A2A server generates per call differ between two runs of one call without
 * either being wrong, so they are never compared.
 */
export const RPC_GENERATED_PATHS: readonly string[] = ['/body/id', ...RPC_RESULT_ROOTS.flatMap((root) => RPC_GENERATED.map((p) => `${root}/${p}`))];

/** What one flow has learned: paths (array indexes generalized to `*`) that differ between direct calls. */
export class NoiseBaseline {
  private readonly trie = new RuleTrie<true>();
  private readonly known = new Set<string>();
  /** Noise samples compared so far. */
  samples = 0;

  /** Diffs two direct results of one request; returns the paths newly classified as noise. */
  learn(first: ComparableResult, second: ComparableResult, rules: CompiledRules): string[] {
    this.samples += 1;
    const fresh: string[] = [];
    for (const d of diffResults(first, second, rules)) {
      const general = generalizePointer(d.path);
      if (this.known.has(general)) continue;
      this.known.add(general);
      this.trie.insert(parsePointer(general), true);
      fresh.push(general);
    }
    return fresh;
  }

  /** Whether a concrete diff path is noise (itself or below a noisy path). */
  covers(path: string): boolean {
    return this.known.size > 0 && this.trie.matches(parsePointer(path), true);
  }

  /** Splits diffs into those that count and the noise paths among them. */
  split(diffs: readonly FieldDiff[]): { counted: readonly FieldDiff[]; noise: string[] } {
    if (this.known.size === 0) return { counted: diffs, noise: [] };
    const counted: FieldDiff[] = [];
    const noise: string[] = [];
    for (const d of diffs) {
      if (this.covers(d.path)) noise.push(d.path);
      else counted.push(d);
    }
    return { counted, noise };
  }

  paths(): string[] {
    return [...this.known];
  }
}
