import net from 'node:net';
import { rabbitmqBusSchema, redisBusSchema } from '../../src/config/bus.js';
import type { BusConfigInput, CreateBusOptions } from '../../src/bus/index.js';

/**
 * A TCP relay to a real server that a test can cut: `down()` drops every live connection and refuses new
 * ones (like a dead broker), `up()` lets traffic through again. Faults at the connection layer, the real
 * server behind it.
 */
export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetHost: string, targetPort: number): Promise<FaultProxy> {
  let isDown = false;
  const live = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (isDown) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    live.add(client);
    live.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      live.delete(client);
      live.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    down() {
      isDown = true;
      for (const s of live) s.destroy();
      live.clear();
    },
    up() {
      isDown = false;
    },
    close() {
      isDown = true;
      for (const s of live) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A relay to the Redis server at `url`, and `url` pointed at the relay (credentials and database kept). */
export async function redisFaultProxy(url: string): Promise<{ relay: FaultProxy; url: string }> {
  const target = new URL(url);
  const relay = await startFaultProxy(target.hostname, Number(target.port || 6379));
  target.hostname = relay.host;
  target.port = String(relay.port);
  return { relay, url: target.toString() };
}

/** A bus config whose every connection to its server runs through relays a test can cut. */
export interface CuttableBus {
  config: BusConfigInput;
  options: CreateBusOptions;
  /** Drops every live connection and refuses new ones, as a dead broker would. */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/**
 * Puts relays between `config`'s bus and its server: Redis and RabbitMQ through their URL; Kafka through
 * the socket factory, because Kafka clients reconnect to the addresses the broker advertises, not the bootstrap list.
 */
export async function cuttableBus(config: BusConfigInput): Promise<CuttableBus> {
  const relays = new Map<string, FaultProxy>();
  const all = {
    down: () => relays.forEach((r) => r.down()),
    up: () => relays.forEach((r) => r.up()),
    close: async () => void (await Promise.all([...relays.values()].map((r) => r.close()))),
  };
  if (config.kind === 'redis') {
    const { relay, url } = await redisFaultProxy(config.url ?? redisBusSchema.parse(config).url);
    relays.set('redis', relay);
    return { config: { ...config, url }, options: {}, ...all };
  }
  if (config.kind === 'rabbitmq') {
    const target = new URL(config.url ?? rabbitmqBusSchema.parse(config).url);
    const relay = await startFaultProxy(target.hostname, Number(target.port || 5672));
    relays.set('rabbitmq', relay);
    target.hostname = relay.host;
    target.port = String(relay.port);
    return { config: { ...config, url: target.toString() }, options: {}, ...all };
  }
  if (config.kind === 'kafka') {
    for (const b of config.brokers) {
      const [host, port] = b.split(':') as [string, string];
      relays.set(b, await startFaultProxy(host, Number(port)));
    }
    const connect = (host: string, port: number): net.Socket => {
      const relay = relays.get(`${host}:${port}`);
      if (!relay) throw new Error(`no relay for ${host}:${port}`);
      return net.connect(relay.port, relay.host);
    };
    return { config, options: { connect }, ...all };
  }
  throw new Error('the embedded bus has no connection to cut');
}
