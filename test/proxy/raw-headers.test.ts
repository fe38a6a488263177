import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createProxyMiddleware, type Plugin } from 'http-proxy-middleware';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { forwardRepeatedHeaders } from '../../proxy/raw-headers.js';

/** What the upstream received: its raw header lines and body, per request. */
interface Seen {
  rawHeaders: string[];
  body: string;
}

let upstream: http.Server;
let upstreamUrl: string;
const seen: Seen[] = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ rawHeaders: req.rawHeaders, body });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => upstream.close(resolve)));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  seen.length = 0;
  afterProxy.length = 0;
});

/** A proxy with the sidecar's http-proxy-middleware options (proxy/upstreams.ts), plus `plugin`. */
async function proxy(plugin: Plugin | undefined): Promise<number> {
  const agent = new http.Agent({ keepAlive: true });
  const middleware = createProxyMiddleware({
    target: new URL(upstreamUrl),
    agent,
    changeOrigin: false,
    xfwd: false,
    preserveHeaderKeyCase: true,
    ejectPlugins: true,
    plugins: plugin ? [plugin] : [],
  });
  const server = http.createServer((req, res) => void middleware(req, res, () => res.writeHead(404).end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    agent.destroy();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

/** What the sidecar's proxy plugin does (proxy/forward.ts): the hook first, then a body capture that starts the flow. */
const afterProxy: Array<string | string[] | undefined> = [];
const restoring: Plugin = (p) => {
  p.on('start', (req) => forwardRepeatedHeaders(req));
  p.on('start', (req) => req.on('data', () => undefined));
  p.on('proxyRes', (_res, req) => void afterProxy.push(req.headers.authorization));
};

/** Sends raw HTTP/1.1 requests on one connection and resolves once `count` responses have arrived. */
function send(port: number, requests: string[], count = requests.length): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      text += c;
      if ((text.match(/HTTP\/1\.1 200/g) ?? []).length === count) {
        socket.destroy();
        resolve();
      }
    });
    socket.on('error', reject);
    socket.write(requests.join(''));
  });
}

/** [name, value] pairs of the lines named `names` (case-insensitive), in the order received. */
function lines(rawHeaders: string[], ...names: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (names.includes(rawHeaders[i]!.toLowerCase())) out.push([rawHeaders[i]!, rawHeaders[i + 1]!]);
  return out;
}

const REPEATED =
  'GET /a HTTP/1.1\r\nHost: agent.local\r\nAuthorization: Bearer first\r\nX-Trace: one\r\nAuthorization: Bearer second\r\n' +
  'X-Trace: two, three\r\nCookie: a=1\r\nCookie: b=2\r\nAccept: text/plain\r\n\r\n';

describe('forwardRepeatedHeaders (http-proxy start hook)', () => {
  it('without it, http-proxy drops the second Authorization and joins the rest (why the hook exists)', async () => {
    await send(await proxy(undefined), [REPEATED]);
    expect(lines(seen[0]!.rawHeaders, 'authorization')).toEqual([['authorization', 'Bearer first']]);
    expect(lines(seen[0]!.rawHeaders, 'x-trace')).toEqual([['x-trace', 'one, two, three']]);
  });

  it('forwards every repeated line with its value as sent, and the rest as before', async () => {
    await send(await proxy(restoring), [REPEATED]);
    const raw = seen[0]!.rawHeaders;
    expect(lines(raw, 'authorization')).toEqual([
      ['authorization', 'Bearer first'],
      ['authorization', 'Bearer second'],
    ]);
    expect(lines(raw, 'x-trace')).toEqual([
      ['x-trace', 'one'],
      ['x-trace', 'two, three'],
    ]);
    // Node's client sends one Cookie line, as RFC 6265 asks of clients: the values joined with `; `.
    expect(lines(raw, 'cookie')).toEqual([['cookie', 'a=1; b=2']]);
    // Everything else reading req.headers still sees Node's value.
    expect(afterProxy).toEqual(['Bearer first']);
    expect(lines(raw, 'accept', 'host').sort()).toEqual([
      ['accept', 'text/plain'],
      ['host', 'agent.local'],
    ]);
  });

  it('works for bodies and on a reused upstream connection', async () => {
    const post = (n: number) => `POST /b HTTP/1.1\r\nHost: h\r\nAuthorization: A${n}\r\nAuthorization: B${n}\r\nContent-Length: 5\r\n\r\nbody${n}`;
    await send(await proxy(restoring), [post(1), post(2)]);
    expect(seen.map((s) => [lines(s.rawHeaders, 'authorization').map(([, v]) => v), s.body])).toEqual([
      [['A1', 'B1'], 'body1'],
      [['A2', 'B2'], 'body2'],
    ]);
  });

  it('also holds for a request with Expect: 100-continue', async () => {
    await send(await proxy(restoring), ['POST /d HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nAuthorization: A\r\nAuthorization: B\r\nContent-Length: 2\r\n\r\nhi']);
    expect(lines(seen[0]!.rawHeaders, 'authorization').map(([, v]) => v)).toEqual(['A', 'B']);
    expect(seen[0]!.body).toBe('hi');
  });

  it('leaves framing and routing headers single', async () => {
    // Node accepts two Host lines and keeps the first in req.headers: the upstream must see only that one.
    await send(await proxy(restoring), ['POST /c HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 2\r\nX-Custom: 1\r\nX-Custom: 2\r\n\r\nhi']);
    expect(lines(seen[0]!.rawHeaders, 'host', 'content-length', 'x-custom').sort()).toEqual([
      ['content-length', '2'],
      ['host', 'a'],
      ['x-custom', '1'],
      ['x-custom', '2'],
    ]);
    expect(seen[0]!.body).toBe('hi');
  });
});
