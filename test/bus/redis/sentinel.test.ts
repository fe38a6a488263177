import { describe, expect, it } from 'vitest';
import { redisTarget, sentinelOptions } from '../../../src/bus/redis/connection.js';
import { busConfigSchema, redisBusSchema } from '../../../src/config/bus.js';

// The Sentinel settings as ioredis gets them, and the config rules around them. Failover itself runs on a
// real primary, replica and three Sentinels in test/cluster/redis-failover.test.ts.
describe('redis bus: Sentinel and waitReplicas config', () => {
  it('passes the sentinels and the primary name to ioredis (not the failover detector), and names them in messages', () => {
    const config = redisBusSchema.parse({ kind: 'redis', url: 'redis://:secret@ignored:6379/2', sentinels: ['10.0.0.1:26379', 'sentinel-b:26380'], name: 'orders', sentinelPassword: 's3' });
    expect(sentinelOptions(config)).toMatchObject({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'sentinel-b', port: 26380 },
      ],
      name: 'orders',
      role: 'master',
      sentinelPassword: 's3',
    });
    expect(sentinelOptions(config)).not.toHaveProperty('failoverDetector');
    expect(redisTarget(config)).toBe('primary "orders" of sentinels 10.0.0.1:26379,sentinel-b:26380');
  });

  it('adds nothing without sentinels, and turns TLS on for the primary in Sentinel mode when bus.tls is on', () => {
    expect(sentinelOptions(redisBusSchema.parse({ kind: 'redis' }))).toEqual({});
    expect(sentinelOptions(redisBusSchema.parse({ kind: 'redis', sentinels: ['s:26379'], tls: true, sentinelTls: true }))).toMatchObject({ enableTLSForSentinelMode: true, sentinelTLS: {} });
  });

  it('refuses a sentinel that is not host:port, and a waitTimeout that does not fit in publishTimeout', () => {
    expect(busConfigSchema.safeParse({ kind: 'redis', sentinels: ['sentinel-a'] }).success).toBe(false);
    const r = busConfigSchema.safeParse({ kind: 'redis', waitReplicas: 1, waitTimeout: '5s', publishTimeout: '2s' });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['waitTimeout']);
    expect(busConfigSchema.safeParse({ kind: 'redis', waitReplicas: 1, waitTimeout: '500ms' }).success).toBe(true);
  });

  it('kafka: refuses minInsyncReplicas above replicationFactor; both unset leave the broker defaults', () => {
    const r = busConfigSchema.safeParse({ kind: 'kafka', brokers: ['k:9092'], replicationFactor: 2, minInsyncReplicas: 3 });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.path).toEqual(['minInsyncReplicas']);
    const defaults = busConfigSchema.parse({ kind: 'kafka', brokers: ['k:9092'] });
    expect(defaults).not.toHaveProperty('replicationFactor');
    expect(defaults).not.toHaveProperty('minInsyncReplicas');
  });
});
