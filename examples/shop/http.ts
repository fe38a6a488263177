import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../src/logger.js';

/**
 * The little HTTP kit the shop's node:http agents share: JSON in and out, a route table, listening on a
 * port, and a keep-alive JSON client for calling the other agents.
 */

/** What every agent's `start()` returns. */
export interface AgentHandle {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  /** Requests served per route (`POST /quotes`), for the demo's summary and the tests. */
  readonly served: ReadonlyMap<string, number>;
  close(): Promise<void>;
}

/** What every agent's `start()` takes: where to listen and the base URLs of the agents it calls. */
export interface StartOptions<D extends object = Record<string, never>> {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  deps?: D;
  /** Where the agent logs its failures (silent when omitted). */
  logger?: Logger;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendError(res: ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: { code: err.code, message: err.message, ...err.extra } });
}

/** Reads and parses a JSON request body (up to 1 MiB); HttpError 400/413 otherwise. */
export function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1_048_576) {
        reject(new HttpError(413, 'BODY_TOO_LARGE', 'request body over 1 MiB'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.length === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, 'BAD_JSON', 'request body is not JSON'));
      }
    });
  });
}

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
}

/** A route's answer: status, body and optional headers. */
export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface Route {
  method: string;
  /** `/stock/:sku` style template. */
  path: string;
  handle(ctx: RouteContext): Promise<Reply> | Reply;
}

interface CompiledRoute extends Route {
  regex: RegExp;
  names: string[];
  label: string;
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const pattern = route.path
    .split('/')
    .map((seg) => {
      if (!seg.startsWith(':')) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(seg.slice(1));
      return '([^/]+)';
    })
    .join('/');
  return { ...route, regex: new RegExp(`^${pattern}$`), names, label: `${route.method} ${route.path}` };
}

/**
 * A node:http server answering `routes`, plus `GET /healthz`. Handlers throw HttpError for client errors;
 * anything else is a 500, logged.
 */
export function createJsonServer(name: string, routes: readonly Route[], served: Map<string, number>, logger?: Logger): http.Server {
  const table = routes.map(compile);
  return http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent.local');
    if (req.method === 'GET' && url.pathname === '/healthz') return sendJson(res, 200, { ok: true, agent: name });
    for (const route of table) {
      if (route.method !== req.method) continue;
      const m = route.regex.exec(url.pathname);
      if (!m) continue;
      served.set(route.label, (served.get(route.label) ?? 0) + 1);
      const params: Record<string, string> = {};
      route.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1]!)));
      Promise.resolve()
        .then(() => route.handle({ req, res, params, query: url.searchParams }))
        .then(
          (reply) => sendJson(res, reply.status, reply.body, reply.headers),
          (err: unknown) => {
            if (err instanceof HttpError) return sendError(res, err);
            logger?.error({ err, agent: name, route: route.label }, 'request failed');
            if (!res.headersSent) sendError(res, new HttpError(500, 'INTERNAL', `${name} failed to answer`));
            else res.destroy();
          },
        );
      return;
    }
    req.resume();
    sendError(res, new HttpError(404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`));
  });
}

/** Listens on `port` (0 = a free one) and returns the handle every agent's `start()` gives back. */
export async function listenAgent(name: string, server: http.Server, served: ReadonlyMap<string, number>, options: { port?: number; host?: string }): Promise<AgentHandle> {
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://${host}:${port}`,
    port,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An answer from another agent. */
export interface JsonResponse<T = unknown> {
  status: number;
  body: T;
}

/**
 * Calls other agents with JSON over keep-alive connections. Network failures and non-JSON answers reject
 * with an HttpError 502 (the caller's own answer when a dependency is down).
 */
export class JsonClient {
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;

  constructor(
    private readonly caller: string,
    options: { maxSockets?: number; timeoutMs?: number } = {},
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 });
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  get<T = unknown>(url: string, headers: Record<string, string> = {}): Promise<JsonResponse<T>> {
    return this.request('GET', url, undefined, headers);
  }

  post<T = unknown>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse<T>> {
    return this.request('POST', url, body, headers);
  }

  request<T = unknown>(method: string, url: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        url,
        {
          method,
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: {
            accept: 'application/json',
            'user-agent': `shop-${this.caller}/1.0`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new HttpError(502, 'UPSTREAM_FAILED', `${method} ${url}: ${err.message}`)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({ status: res.statusCode ?? 0, body: (text ? JSON.parse(text) : undefined) as T });
            } catch {
              reject(new HttpError(502, 'UPSTREAM_FAILED', `${method} ${url} answered ${res.statusCode} with a body that is not JSON`));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(new HttpError(502, 'UPSTREAM_FAILED', `${method} ${url}: ${err.message}`)));
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
