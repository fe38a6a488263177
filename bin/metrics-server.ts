import http from 'node:http';
import type { CutoverConfig } from '../src/config/schema.js';
import { hostPort } from '../src/config/fields.js';
import { CutoverError, ErrorCodes } from '../src/errors.js';
import type { Registry } from '../src/metrics.js';
import { parseListen } from '../src/net.js';
import { usageError } from './io.js';

/** Checks a `--metrics HOST:PORT` value before anything starts; undefined without one. */
export function metricsListen(value: string | undefined, usage: string): { host: string; port: number } | undefined {
  if (value === undefined) return undefined;
  if (!hostPort.safeParse(value).success) throw usageError(`--metrics takes HOST:PORT, got ${JSON.stringify(value)}`, usage);
  return parseListen(value);
}

/**
 * A minimal Prometheus endpoint for the processes the CLI runs apart from a sidecar (which serves its own on
 * the admin API): GET /metrics, behind the bearer `admin.token` when the config has one; without a token
 * only on a loopback address.
 */
export async function serveMetrics(config: CutoverConfig, at: { host: string; port: number }, registry: Registry): Promise<http.Server> {
  const token = config.admin.auth ? config.admin.token : undefined;
  if (!token && !/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(at.host)) {
    throw new CutoverError(ErrorCodes.USAGE, `--metrics ${at.host}:${at.port}: a non-loopback address needs admin.token in the config`);
  }
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: ErrorCodes.NOT_FOUND, message: 'only GET /metrics here' } }));
      return;
    }
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end(JSON.stringify({ error: { code: ErrorCodes.UNAUTHORIZED, message: 'missing or wrong bearer token' } }));
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => resolve());
  });
  return server;
}

/** Closes a server made by {@link serveMetrics}; nothing without one. */
export async function closeMetrics(server: http.Server | undefined): Promise<void> {
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
}
