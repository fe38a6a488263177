import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { randomUUID } from 'node:crypto';

/**
 * Counting straight from each broker's storage with its own client, not through the bus adapters under
 * test: a bug in an adapter cannot hide itself from these counts.
 */
export interface SeenEvent {
  /** CloudEvent id: the same id twice is a duplicate. */
  eventId: string;
  kind: 'call' | 'observation';
  /** The id the test put in the call's body; '' when the event does not carry one. */
  callId: string;
  event: Record<string, unknown>;
  /** When the broker took it (epoch ms): Kafka's record timestamp, the Redis entry id's time part. */
  at?: number;
}

const OBSERVATION_DIRECT = 'cutover.observation.direct';

/** Classifies one serialized CloudEvent; undefined when it is neither a call nor a direct observation. */
export function parseSeen(text: string): SeenEvent | undefined {
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const data = (event.data ?? {}) as { body?: { id?: unknown }; request?: { body?: unknown } };
  if (event.type === OBSERVATION_DIRECT) {
    return { eventId: String(event.id), kind: 'observation', callId: idInText(data.request?.body), event };
  }
  if (typeof event.type === 'string' && event.type.startsWith('cutover.observation')) return undefined;
  return { eventId: String(event.id), kind: 'call', callId: String(data.body?.id ?? ''), event };
}

/** The observation's call sample carries the request body as published, as text. */
function idInText(body: unknown): string {
  if (typeof body !== 'string') return '';
  try {
    return String((JSON.parse(body) as { id?: unknown }).id ?? '');
  } catch {
    return '';
  }
}

/** Every event in the Redis streams under `prefix` (XRANGE on `<prefix>t:<topic>:<partition>`). */
export async function readRedis(url: string, prefix: string): Promise<SeenEvent[]> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
  await redis.connect();
  try {
    const out: SeenEvent[] = [];
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}t:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    for (const key of keys) {
      if ((await redis.type(key)) !== 'stream') continue;
      let from = '-';
      for (;;) {
        const entries = (await redis.xrange(key, from, '+', 'COUNT', 1000)) as Array<[string, string[]]>;
        for (const [id, fields] of entries) {
          const i = fields.indexOf('event');
          const seen = i >= 0 ? parseSeen(fields[i + 1]!) : undefined;
          if (seen) out.push({ ...seen, at: Number(id.split('-')[0]) });
        }
        if (entries.length < 1000) break;
        from = `(${entries[entries.length - 1]![0]}`;
      }
    }
    return out;
  } finally {
    redis.disconnect();
  }
}

/** Every event in the embedded bus's SQLite file, opened read-only. */
export function readEmbedded(file: string): SeenEvent[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT event FROM messages').all() as Array<{ event: string }>).flatMap((r) => parseSeen(r.event) ?? []);
  } finally {
    db.close();
  }
}

/** A kafkajs consumer of `topics` from the beginning, collecting as it goes (topics must exist already). */
export interface KafkaCollector {
  events(): SeenEvent[];
  close(): Promise<void>;
}

export async function collectKafka(brokers: string[], topics: string[]): Promise<KafkaCollector> {
  const kafka = new Kafka({ clientId: 'faults-counter', brokers, logLevel: logLevel.NOTHING, connectionTimeout: 3_000, requestTimeout: 10_000 });
  const consumer: Consumer = kafka.consumer({ groupId: `faults-counter-${randomUUID()}`, sessionTimeout: 10_000, allowAutoTopicCreation: false });
  const out: SeenEvent[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const seen = message.value ? parseSeen(message.value.toString('utf8')) : undefined;
      if (seen) out.push({ ...seen, at: Number(message.timestamp) });
    },
  });
  return { events: () => out, close: () => consumer.disconnect() };
}

export interface Tally {
  lost: number;
  duplicated: number;
  /** A few of the missing (call id, kind) pairs, for the failure message. */
  missing: string[];
}

/**
 * Compares what the bus holds with the calls that must be on it: each expected call id needs its call
 * event and its direct observation. Events of other tests (other call id prefixes) are ignored.
 */
export function tally(expectedCallIds: Iterable<string>, events: SeenEvent[], prefix: string): Tally {
  const ours = events.filter((e) => e.callId.startsWith(`${prefix}-`));
  const have = new Set(ours.map((e) => `${e.kind}:${e.callId}`));
  const missing: string[] = [];
  for (const id of expectedCallIds) {
    for (const kind of ['call', 'observation'] as const) if (!have.has(`${kind}:${id}`)) missing.push(`${kind}:${id}`);
  }
  return { lost: missing.length, duplicated: ours.length - new Set(ours.map((e) => e.eventId)).size, missing: missing.slice(0, 10) };
}

export interface Row {
  calls: number;
  failed: number;
  lost: number;
  duplicated: number;
}

/** The suite's one line per scenario, on stderr so it shows in CI logs whatever the reporter. */
export function printRow(scenario: string, r: Row | { calls: number; failed: number; lost: '-'; duplicated: '-' }): void {
  process.stderr.write(`\nFAULTS ${scenario} | ${r.calls} | ${r.failed} | ${r.lost} | ${r.duplicated}\n`);
}

/** Ids the upstream saw, restricted to this test's prefix. */
export function upstreamIds(seen: Map<string, number>, prefix: string): string[] {
  return [...seen.keys()].filter((id) => id.startsWith(`${prefix}-`));
}
