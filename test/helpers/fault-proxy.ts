import net from 'node:net';

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
