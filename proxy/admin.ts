import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import type { BusHealth } from '../src/bus/types.js';
import { ErrorCodes } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import type { FlowTable } from './flow-table.js';
import type { Publisher } from './publisher.js';

export interface AdminOptions {
  /** Bearer token; undefined only when auth is disabled (allowed on loopback listeners only). */
  token: string | undefined;
  auth: boolean;
  agent: string;
  flows: FlowTable;
  publisher: Publisher;
  registry: Registry;
  /** Health of the bus, or undefined while it is not started. */
  busHealth: () => Promise<BusHealth | undefined>;
  /** Whether the data plane is accepting requests. */
  listening: () => boolean;
  logger: Logger;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The admin API (own listener; express is fine off the hot path): `/healthz` (process up), `/readyz` (bus
 * reachable), `/flows` (mode and counters per flow), `/metrics` (Prometheus). Every route needs
 * `Authorization: Bearer <token>` unless auth is disabled.
 */
export function createAdminServer(options: AdminOptions): http.Server {
  const app = express();
  app.disable('x-powered-by');
  const expected = options.token ? digest(options.token) : undefined;

  app.use((req: Request, res: Response, next: NextFunction) => {
    if (!options.auth) return next();
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    // Compare digests: equal length always, so the comparison time says nothing about the token.
    if (m && expected && timingSafeEqual(digest(m[1]!.trim()), expected)) return next();
    res.setHeader('www-authenticate', 'Bearer realm="cutover-admin"');
    res.status(401).json({ error: { code: ErrorCodes.UNAUTHORIZED, message: 'missing or wrong bearer token' } });
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
    options.logger.error({ err }, 'admin request failed');
    res.status(500).json({ error: { code: ErrorCodes.INTERNAL, message: 'internal error' } });
  });

  return http.createServer(app);
}
