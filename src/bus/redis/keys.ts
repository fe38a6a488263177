/**
 * Key layout of the Redis bus. Every key starts with the configured prefix so that several installations
 * (and test runs) can share one Redis. Topic names cannot contain `:` (see topics.ts), so the layout is
 * unambiguous.
 *
 *   <prefix>topics                      hash: logical topic -> partition count (the topic registry)
 *   <prefix>t:<topic>:<p>               stream of partition p of a topic (fields key, event, headers)
 *   <prefix>id:<topic>                  last entry id given out for the topic (ids are topic-wide, see scripts.ts)
 *   <prefix>g:<group>:members           zset: live consumers of a group, scored by lease expiry (ms)
 *   <prefix>g:<group>:lease:<topic>:<p> string: which consumer of the group owns partition p of the topic
 */
export interface RedisKeys {
  readonly registry: string;
  stream(topic: string, partition: number): string;
  lastId(topic: string): string;
  members(group: string): string;
  lease(group: string, topic: string, partition: number): string;
}

export function redisKeys(prefix: string): RedisKeys {
  return {
    registry: `${prefix}topics`,
    stream: (topic, partition) => `${prefix}t:${topic}:${partition}`,
    lastId: (topic) => `${prefix}id:${topic}`,
    members: (group) => `${prefix}g:${group}:members`,
    lease: (group, topic, partition) => `${prefix}g:${group}:lease:${topic}:${partition}`,
  };
}

export { partitionOf } from '../hash.js';

/** Orders two stream ids (`<ms>-<seq>`) numerically. */
export function compareIds(a: string, b: string): number {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  const ma = Number(a.slice(0, da));
  const mb = Number(b.slice(0, db));
  if (ma !== mb) return ma < mb ? -1 : 1;
  const sa = Number(a.slice(da + 1));
  const sb = Number(b.slice(db + 1));
  return sa === sb ? 0 : sa < sb ? -1 : 1;
}

/** The millisecond part of a stream id: when Redis accepted the entry. */
export function idTime(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}
