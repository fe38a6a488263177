import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDemoArgs } from '../../../examples/demo/options.js';

describe('demo flags', () => {
  it('defaults: embedded bus, 1,000 requests, report folder in the current directory, waits', () => {
    const o = parseDemoArgs([], {}, '/home/me/shop');
    expect(o).toMatchObject({ bus: 'embedded', requests: 1000, concurrency: 8, seed: 42, out: path.resolve('/home/me/shop/cutover-demo-report'), wait: true, logLevel: 'warn', redisUrl: 'redis://127.0.0.1:6379', kafkaBrokers: ['127.0.0.1:19092'], rabbitmqUrl: 'amqp://guest:guest@127.0.0.1:5672/' });
    expect([...o.fixes]).toEqual([]);
  });

  it('reads every flag, and the broker addresses from the environment', () => {
    const o = parseDemoArgs(
      ['--bus', 'kafka', '--requests', '50', '--concurrency', '2', '--seed', '7', '--out', 'r', '--fix', 'pricing.quote', '--fix', 'inventory.reserve', '--no-wait', '--log-level', 'info'],
      { KAFKA_BROKERS: 'k1:9092, k2:9092', REDIS_URL: 'redis://r:6380' },
      '/w',
    );
    expect(o).toMatchObject({ bus: 'kafka', requests: 50, concurrency: 2, seed: 7, out: '/w/r', wait: false, logLevel: 'info', kafkaBrokers: ['k1:9092', 'k2:9092'], redisUrl: 'redis://r:6380' });
    expect([...o.fixes].sort()).toEqual(['inventory.reserve', 'pricing.quote']);
    expect(parseDemoArgs(['--bus', 'rabbitmq'], { RABBITMQ_URL: 'amqp://u:p@mq:5672/shop' })).toMatchObject({ bus: 'rabbitmq', rabbitmqUrl: 'amqp://u:p@mq:5672/shop' });
  });

  it('does not wait under CI, and resolves --out where npm start was typed (INIT_CWD)', () => {
    expect(parseDemoArgs([], { CI: 'true' }).wait).toBe(false);
    expect(parseDemoArgs([], { CI: 'false' }).wait).toBe(true);
    expect(parseDemoArgs(['--out', 'x'], { INIT_CWD: '/typed/here' }, '/package/root').out).toBe('/typed/here/x');
  });

  it('rejects bad values with CUTOVER_USAGE and the usage text', () => {
    for (const args of [['--bus', 'nats'], ['--requests', '0'], ['--requests', 'ten'], ['--fix', 'fraud.check'], ['--log-level', 'loud'], ['--seed', '-1'], ['--nope'], ['stray']]) {
      expect(() => parseDemoArgs(args, {}), args.join(' ')).toThrow(expect.objectContaining({ code: 'CUTOVER_USAGE', message: expect.stringContaining('usage: npm start') }));
    }
  });
});
