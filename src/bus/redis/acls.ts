import type { RedisBusConfig } from '../../config/bus.js';
import type { Logger } from '../../logger.js';
import { connect, disconnect, openConnection, toBusError } from './connection.js';

/** One `ACL SETUSER` to run: the user, its password, and the rules after `reset on >password`. */
export interface RedisAclApply {
  identity: string;
  password: string;
  rules: readonly string[];
}

/**
 * Runs `ACL SETUSER <identity> reset on ><password> <rules...>` for each user, with the connection of
 * `config` (its user needs `+acl|setuser`). `reset` first: the user ends up with exactly these rules,
 * whatever it had. Returns the users set.
 */
export async function applyRedisAcls(config: RedisBusConfig, users: readonly RedisAclApply[], logger: Logger): Promise<number> {
  const conn = openConnection(config, { role: 'acl', socketTimeout: Math.max(config.publishTimeout, 1_000) }, logger);
  try {
    await connect(conn, config, config.publishTimeout);
    for (const u of users) {
      try {
        await conn.call('ACL', 'SETUSER', u.identity, 'reset', 'on', `>${u.password}`, ...u.rules);
      } catch (err) {
        throw toBusError(err, `ACL SETUSER ${u.identity}`);
      }
    }
    return users.length;
  } finally {
    await disconnect(conn);
  }
}
