import net from 'node:net';

/**
 * A TCP server that accepts every connection and never says a word: a broker that hung (SIGSTOP, a full
 * GC pause, a dead process behind a live load balancer). It counts what the client does to it.
 */
export interface BlackHole {
  readonly address: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections the client still holds open. */
  readonly open: number;
  /** The most connections open at once. */
  readonly maxOpen: number;
  close(): Promise<void>;
}

export async function startBlackHole(): Promise<BlackHole> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let maxOpen = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    maxOpen = Math.max(maxOpen, sockets.size);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
    // Read and drop: a client's FIN must be seen for the connection to count as closed.
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    get maxOpen() {
      return maxOpen;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
