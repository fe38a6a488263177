import net from 'node:net';

/** Whether a TCP connect to `host:port` succeeds within `timeoutMs` (the connection is closed at once). */
export function tcpReachable(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `http://<listen>` with wildcard addresses replaced by loopback: where a pasted curl can reach the sidecar. */
export function sidecarBaseUrl(listen: string): string {
  const host = listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
  return `http://${host}`;
}

/** `127.0.0.1:15000` / `[::1]:15000` / `localhost:0` → host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(i + 1)) };
}
