import type { AclConfig } from '../config/acl.js';
import { exportIdentities, resourcesOf, unmatchedNote } from './resources.js';
import type { GroupRule, TopicRule } from './rules.js';

/**
 * The commands the Redis bus and the dedupe store run (docs/security.md, "Redis: TLS and ACL", explains
 * each); `config|get` is left out on purpose.
 */
export const REDIS_ACL_COMMANDS = [
  'ping', 'info', 'client|setname', 'quit', 'time', 'get', 'mget', 'set', 'del', 'hget', 'hset', 'hsetnx', 'hlen', 'hgetall', 'zadd', 'zrem',
  'zremrangebyscore', 'zcard', 'zrange', 'pexpire', 'xadd', 'xread', 'xreadgroup', 'xack', 'xautoclaim', 'xclaim', 'xpending', 'xgroup|create',
  'xgroup|delconsumer', 'xinfo|stream', 'xinfo|consumers', 'evalsha', 'eval',
] as const;

/** Escapes Redis glob characters in a literal part of a key pattern. */
function glob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** The environment variable `cutover acl --apply` takes an identity's Redis password from. */
export function redisPasswordVariable(identity: string): string {
  return `CUTOVER_REDIS_PASSWORD_${identity.toUpperCase().replace(/-/g, '_')}`;
}

/** One identity's `ACL SETUSER` arguments, the password left to the caller. */
export interface RedisAclUser {
  identity: string;
  passwordVariable: string;
  /** Everything after `ACL SETUSER <identity> reset on ><password>`. */
  rules: string[];
}

/**
 * The Redis ACL users of an `acl:` section. Key layout (src/bus/redis/keys.ts): a topic is the streams
 * `<prefix>t:<topic>:<p>` and its id key `<prefix>id:<topic>`; groups are `<prefix>g:<group>:...`, dedupe
 * records `<prefix>dedupe:<group>:<id>`; `<prefix>topics` is the registry every publisher writes.
 * Publishing runs a script, and Redis checks a script's keys for read and write, and consumer groups
 * write to the stream (XGROUP CREATE, XACK): so every topic published on or consumed in a group is
 * read-write (`~`), and only the topics read without a group (the flip log, parity records) can be
 * read-only (`%R~`).
 */
export function redisAclUsers(acl: AclConfig, options: { prefix: string; known: readonly string[]; observations?: string }): { users: RedisAclUser[]; notes: string[] } {
  const p = glob(options.prefix);
  const notes: string[] = [];
  const topicKeys = (identity: string, rules: TopicRule[], selector: '~' | '%R~'): string[] =>
    rules.flatMap((r) => {
      const res = resourcesOf(r, options.known);
      const note = unmatchedNote(identity, res);
      if (note) notes.push(note);
      if (res.all) return [`${selector}${p}t:*`, `${selector}${p}id:*`];
      return [
        ...res.exact.flatMap((t) => [`${selector}${p}t:${glob(t)}:*`, `${selector}${p}id:${glob(t)}`]),
        ...res.prefixes.flatMap((t) => [`${selector}${p}t:${glob(t)}*`, `${selector}${p}id:${glob(t)}*`]),
      ];
    });
  const groupKeys = (g: GroupRule): string[] => (g.prefix ? [`~${p}g:${glob(g.name)}*`, `~${p}dedupe:${glob(g.name)}*`] : [`~${p}g:${glob(g.name)}:*`, `~${p}dedupe:${glob(g.name)}:*`]);
  const users = exportIdentities(acl, { observations: options.observations }).map(({ identity, permissions }) => {
    const written = new Set([...topicKeys(identity, [...permissions.publish, ...permissions.consume], '~')]);
    const readOnly = topicKeys(identity, permissions.read, '%R~').filter((k) => !written.has(k.replace(/^%R~/, '~')));
    const rules = ['resetchannels', '-@all', ...REDIS_ACL_COMMANDS.map((c) => `+${c}`), `~${p}topics`, ...written, ...new Set(readOnly), ...new Set(permissions.groups.flatMap(groupKeys))];
    return { identity, passwordVariable: redisPasswordVariable(identity), rules };
  });
  return { users, notes: [...new Set(notes)] };
}

/** A user as the `ACL SETUSER` line to run, the password as `${VARIABLE}`. */
export function redisAclLine(user: RedisAclUser): string {
  return ['ACL SETUSER', user.identity, 'reset', 'on', `>\${${user.passwordVariable}}`, ...user.rules].join(' ');
}
