import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { BusHealth } from '../src/bus/types.js';
import { ErrorCodes, isCutoverError } from '../src/errors.js';
import type { AdminControl } from './admin-control.js';
import { AdminClientCerts, AdminTokens, FailureLimit, type AdminClientCert, type AdminToken } from './admin-auth.js';
import type { Logger } from '../src/logger.js';
import type { AdminScope, CutoverConfig } from '../src/config/schema.js';
import { readCertificateFile, readTlsFiles } from '../src/tls.js';
import type { FlowTable } from './flow-table.js';
import type { Outbox } from './outbox.js';
import type { DiscoverySummary } from '../src/discovery/recorder.js';


/** Time for an admin client to send its request headers. */
const ADMIN_HEADERS_TIMEOUT_MS = 10_000;
/** Time for an admin client to send its whole request (headers and body). */
const ADMIN_REQUEST_TIMEOUT_MS = 30_000;
/** An idle keep-alive connection to the admin API is closed after this. */
const ADMIN_KEEP_ALIVE_MS = 5_000;
/** Time for an admin client to finish the TLS handshake (Node's default is two minutes). */
const ADMIN_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The admin listener's TLS material (PEM text, read at start from `admin.tls`). */
export interface AdminTls {
  cert: string;
  key: string;
  /** CA of client certificates; with it clients are asked for a certificate. */
  clientCa?: string;
  /** Refuse the handshake of clients without a certificate from `clientCa`. */
  requireClientCert: boolean;
}

export interface AdminOptions {
  /** Bearer token with every scope; undefined when `tokens` are given or auth is disabled (loopback only). */
  token: string | undefined;
  /** Bearer tokens with their own scopes (`admin.tokens`). */
  tokens?: readonly AdminToken[];
  auth: boolean;
  /** Serve HTTPS with this material; plain HTTP without it. */
  tls?: AdminTls;
  /** Verified client certificates (by subject CN) that stand for a token; needs `tls.clientCa`. */
  clientCerts?: readonly AdminClientCert[];
  /** Failed authentications one client address may make per minute before every request gets 429. Default 10. */
  maxAuthFailures?: number;
  /** Clock of the failure limit (tests). */
  now?: () => number;
  agent: string;
  flows: FlowTable;
  publisher: Outbox;
  registry: Registry;
  /** Health of the bus, or undefined while it is not started. */
  busHealth: () => Promise<BusHealth | undefined>;
  /** Whether the data plane is accepting requests. */
  listening: () => boolean;
  /**
   * Whether the bus-side consumers run: this replica's reply channel (bus-mode calls) and, with `deliver:`,
   * the callee consumers. Reported by /readyz; they do not decide readiness (the data plane serves without).
   */
  consumers?: () => { replies: boolean; deliver?: boolean };
  /** The discovery summary (`observe:`); `GET /discovery` answers 404 without it. */
  discovery?: () => DiscoverySummary;
  logger: Logger;
  /** Flips, history and report (src/flips); those routes answer 404 without it. */
  control?: AdminControl;
}

/**
 * Reads `admin.tls` (at start, once): CUTOVER_CONFIG_INVALID naming `admin.tls.certFile`, `keyFile` or
 * `clientCaFile` when one is unreadable or does not hold what it should.
 */
export function loadAdminTls(config: NonNullable<CutoverConfig['admin']['tls']>): AdminTls {
  const { cert, key } = readTlsFiles({ certFile: config.certFile, keyFile: config.keyFile }, 'admin.tls');
  return {
    cert: cert!,
    key: key!,
    ...(config.clientCaFile !== undefined ? { clientCa: readCertificateFile(config.clientCaFile, 'admin.tls.clientCaFile') } : {}),
    requireClientCert: config.requireClientCert,
  };
}

/**
 * The admin API (own listener; express is fine off the hot path): `/healthz` (process up), `/readyz` (bus
 * reachable), `/flows` (mode and counters per flow), `/discovery` (candidate flows, with `observe:`),
 * `/metrics` (Prometheus). Every route needs
 * `Authorization: Bearer <token>` or, over HTTPS with a client CA, a verified client certificate whose
 * subject CN `clientCerts` lists, unless auth is disabled: GET routes the `read` scope, the rest `flip`.
 * Failed authentications are limited per client address (429 with Retry-After past the limit).
 */
export function createAdminServer(options: AdminOptions): http.Server | https.Server {
  const app = express();
  app.disable('x-powered-by');
  const tokens = new AdminTokens([...(options.token ? [{ token: options.token, scopes: ['read', 'flip'] as const }] : []), ...(options.tokens ?? [])]);
  const certs = new AdminClientCerts(options.tls?.clientCa ? (options.clientCerts ?? []) : []);
  const credentials = certs.size > 0 ? 'bearer token or client certificate' : 'bearer token';
  const failures = new FailureLimit({ limit: options.maxAuthFailures ?? 10, ...(options.now ? { now: options.now } : {}) });

  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!options.auth) return next();
    const client = req.socket.remoteAddress ?? 'unknown';
    // Checked before the token: once over the limit a correct guess is refused too, or the limit would
    // only slow the guessing down.
    const blocked = failures.retryAfter(client);
    if (blocked > 0) return rateLimited(res, blocked);
    // A request that sends an Authorization header is judged by it alone: a wrong token is a failure even
    // from a client with a good certificate. Without one, a verified client certificate may stand for it.
    let scopes: ReadonlySet<AdminScope> | undefined;
    if (req.headers.authorization !== undefined) {
      const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization);
      scopes = m ? tokens.scopesOf(m[1]!.trim()) : undefined;
    } else {
      scopes = certs.scopesOf(req.socket as TLSSocket);
    }
    if (!scopes) {
      const retryAfter = failures.fail(client);
      if (retryAfter > 0) {
        options.logger.warn({ client, retryAfter }, 'too many failed admin authentications; refusing this client for a while');
        return rateLimited(res, retryAfter);
      }
      res.setHeader('www-authenticate', 'Bearer realm="cutover-admin"');
      res.status(401).json({ error: { code: ErrorCodes.UNAUTHORIZED, message: `missing or wrong ${credentials}` } });
      return;
    }
    // Reading is GET and HEAD; anything that changes state (a flip) needs the flip scope.
    const needed = req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'flip';
    if (scopes.has(needed)) return next();
    res.status(403).json({ error: { code: ErrorCodes.AUTH_FORBIDDEN, message: `this ${req.headers.authorization !== undefined ? 'token' : 'client certificate'} lacks the ${needed} scope for ${req.method} ${req.path} (it has: ${[...scopes].join(', ')})` } });
  });

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, agent: options.agent });
  });

  app.get('/readyz', async (_req, res) => {
    const bus = await options.busHealth().catch((): undefined => undefined);
    const ready = options.listening() && bus?.ok === true;
    res.status(ready ? 200 : 503).json({
      ok: ready,
      listening: options.listening(),
      bus: bus ?? { ok: false, detail: 'bus not started yet' },
      publisher: { queueDepth: options.publisher.queueDepth, spoolDepth: options.publisher.spoolDepth, lastFailure: options.publisher.lastFailure ?? null },
      ...(options.consumers ? { consumers: options.consumers() } : {}),
    });
  });

  app.get('/flows', (_req, res) => {
    res.json({
      agent: options.agent,
      flows: options.flows.entries.map((e) => ({
        name: e.config.name,
        mode: e.mode,
        method: e.config.match.method,
        path: e.config.match.path,
        topic: e.config.topic,
        key: e.config.key ?? null,
        schemaVersion: e.config.schemaVersion,
        counters: e.counters,
      })),
      publisher: { ...options.publisher.stats, queueDepth: options.publisher.queueDepth, spoolDepth: options.publisher.spoolDepth },
    });
  });

  const discovery = options.discovery;
  if (discovery) app.get('/discovery', (_req, res) => res.json(discovery()));

  const control = options.control;
  if (control) {
    const fail = (res: Response, err: unknown, next: NextFunction): void => {
      if (!isCutoverError(err)) return next(err);
      const status = err.status ?? (err.code === ErrorCodes.FLIP_REFUSED ? 409 : err.code === ErrorCodes.FLOW_UNKNOWN ? 404 : err.code === ErrorCodes.USAGE ? 400 : 500);
      res.status(status).json({ error: err.toJSON() });
    };
    app.post('/flows/:name/flip', express.json({ limit: '16kb' }), async (req, res, next) => {
      const body: unknown = req.body;
      const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
      const bad = typeof b.to !== 'string' ? 'to (a mode) is required' : b.reason !== undefined && typeof b.reason !== 'string' ? 'reason must be a string' : b.force !== undefined && typeof b.force !== 'boolean' ? 'force must be a boolean' : b.who !== undefined && typeof b.who !== 'string' ? 'who must be a string' : undefined;
      if (bad) {
        res.status(400).json({ error: { code: ErrorCodes.USAGE, message: `body ${bad}: expected {"to": MODE, "reason"?: TEXT, "force"?: boolean}` } });
        return;
      }
      try {
        const result = await control.flip({ flow: req.params.name!, to: b.to as string, reason: b.reason as string | undefined, force: b.force as boolean | undefined, who: (b.who as string | undefined) ?? `admin@${options.agent}` });
        res.json(result.action === 'noop' ? { action: 'noop', flow: result.flow, mode: result.mode } : { action: 'flip', flip: result.record });
      } catch (err) {
        fail(res, err, next);
      }
    });
    app.get('/flows/:name/history', async (req, res, next) => {
      try {
        res.json({ flow: req.params.name, flips: await control.history(req.params.name!) });
      } catch (err) {
        fail(res, err, next);
      }
    });
    app.get('/report', async (_req, res, next) => {
      try {
        res.type('application/json').send((await control.report()).json);
      } catch (err) {
        fail(res, err, next);
      }
    });
    app.get('/report.html', async (_req, res, next) => {
      try {
        res.type('text/html; charset=utf-8').send((await control.report()).html);
      } catch (err) {
        fail(res, err, next);
      }
    });
  }

  app.get('/metrics', async (_req, res, next) => {
    try {
      res.setHeader('content-type', options.registry.contentType);
      res.end(await options.registry.metrics());
    } catch (err) {
      next(err);
    }
  });

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: { code: ErrorCodes.NOT_FOUND, message: `no admin route ${req.method} ${req.path}` } });
  });

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    // Malformed JSON bodies (express.json) are the caller's mistake, not ours.
    if ((err as { type?: string }).type === 'entity.parse.failed' || (err as { type?: string }).type === 'entity.too.large') {
      res.status((err as { status?: number }).status ?? 400).json({ error: { code: ErrorCodes.USAGE, message: (err as Error).message } });
      return;
    }
    options.logger.error({ err }, 'admin request failed');
    res.status(500).json({ error: { code: ErrorCodes.INTERNAL, message: 'internal error' } });
  });

  // Explicit bounds: a client that connects and trickles (or never sends) its request must not hold a
  // socket. They cover receiving the request only; a slow answer (a report) is not cut.
  // Node checks those bounds every `connectionsCheckingInterval` (30 s by default, which would triple them).
  const bounds = { headersTimeout: ADMIN_HEADERS_TIMEOUT_MS, requestTimeout: ADMIN_REQUEST_TIMEOUT_MS, keepAliveTimeout: ADMIN_KEEP_ALIVE_MS, connectionsCheckingInterval: 1_000 };
  const tls = options.tls;
  if (!tls) return http.createServer(bounds, app);
  return https.createServer(
    {
      ...bounds,
      handshakeTimeout: ADMIN_HANDSHAKE_TIMEOUT_MS,
      minVersion: 'TLSv1.2',
      cert: tls.cert,
      key: tls.key,
      // `ca` replaces Node's bundled CAs for client certificates: only the configured client CA counts.
      ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: tls.requireClientCert } : {}),
    },
    app,
  );
}

function rateLimited(res: Response, retryAfter: number): void {
  res.setHeader('retry-after', String(retryAfter));
  res.status(429).json({ error: { code: ErrorCodes.AUTH_RATE_LIMITED, message: `too many failed authentications from this address; retry after ${retryAfter} s` } });
}
