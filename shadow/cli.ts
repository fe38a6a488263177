import { parseArgs } from 'node:util';
import http from 'node:http';
import { createBus } from '../src/bus/index.js';
import { loadConfigFile } from '../src/config/load.js';
import { ConfigError, CutoverError, ErrorCodes, isCutoverError } from '../src/errors.js';
import { cutoverConfigSchema } from '../src/config/schema.js';
import { createLogger, type Logger } from '../src/logger.js';
import { createRegistry, type Registry } from '../src/metrics.js';
import { ShadowRuntime } from './runtime.js';

/**
 * What `cutover shadow` reads from the config file: the bus, the flows with their shadow / compare /
 * noise keys, and the top-level `shadow:`. Keys other parts own pass through untouched (they are checked by
 * the full config schema); the keys read here are validated strictly.
 */
/**
 * The same schema as every other command: a config that `cutover validate` accepts runs here, and one
 * it rejects does not start a shadow side either.
 */
export const shadowCliConfigSchema = cutoverConfigSchema;

export type { CutoverConfig as ShadowCliConfig } from '../src/config/schema.js';

export interface ShadowIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Stops the command (tests); default SIGINT / SIGTERM. */
  signal?: AbortSignal;
  /** Logger to use instead of one built from the config's `log.level` (tests). */
  logger?: Logger;
}

const USAGE = `usage: cutover shadow --config FILE [--only delivery|comparator] [--metrics HOST:PORT]

Runs the shadow side on its own: a delivery consumer per flow with a shadow.target (consumer group
cutover.shadow.<flow>) and the comparator for the config's flows (group cutover.comparator.<flow> each).
Start several to scale out. --metrics serves Prometheus metrics at http://HOST:PORT/metrics (bearer
admin.token when the config has one; without a token only on a loopback address).`;

/**
 * `cutover shadow --config FILE`: runs delivery consumers and comparator until SIGINT/SIGTERM (or
 * `io.signal`), then drains and exits. Returns the exit code: 0, 1 on a runtime failure, 2 on usage or config
 * errors (every config problem printed with its path).
 */
export async function shadowCommand(argv: string[], io: ShadowIo): Promise<number> {
  let values: { config?: string; only?: string; metrics?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, only: { type: 'string' }, metrics: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (err) {
    io.err(`${ErrorCodes.USAGE}: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (!values.config) {
    io.err(`${ErrorCodes.USAGE}: shadow needs --config FILE\n${USAGE}`);
    return 2;
  }
  if (values.only !== undefined && values.only !== 'delivery' && values.only !== 'comparator') {
    io.err(`${ErrorCodes.USAGE}: --only takes delivery or comparator, got ${JSON.stringify(values.only)}`);
    return 2;
  }

  const metricsAt = values.metrics === undefined ? undefined : /^([^\s:]+):(\d{1,5})$/.exec(values.metrics);
  if (values.metrics !== undefined && !metricsAt) {
    io.err(`${ErrorCodes.USAGE}: --metrics takes HOST:PORT, got ${JSON.stringify(values.metrics)}`);
    return 2;
  }

  let runtime: ShadowRuntime | undefined;
  let bus: Awaited<ReturnType<typeof createBus>> | undefined;
  let metricsServer: http.Server | undefined;
  try {
    const config = loadConfigFile(values.config, shadowCliConfigSchema);
    const registry = createRegistry({ defaultMetrics: true });
    if (metricsAt) {
      const token = config.admin.auth ? config.admin.token : undefined;
      if (!token && !/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(metricsAt[1]!)) {
        throw new CutoverError(ErrorCodes.USAGE, `--metrics ${values.metrics}: a non-loopback address needs admin.token in the config`);
      }
      metricsServer = await serveMetrics(registry, metricsAt[1]!, Number(metricsAt[2]), token);
    }
    const logger = io.logger ?? createLogger({ level: config.log.level });
    bus = await createBus(config.bus, { logger });
    await bus.start();
    runtime = new ShadowRuntime({
      bus,
      busConfig: config.bus,
      flows: config.flows,
      shadow: config.shadow,
      dataDir: config.dataDir,
      logger,
      registry,
      delivery: values.only !== 'comparator',
      comparator: values.only === 'delivery' ? false : config.shadow.comparator,
      ...(config.observationsTopic ? { observationsTopic: config.observationsTopic } : {}),
    });
    await runtime.start();
    const delivering = runtime.consumers.map((c) => c.group);
    io.out(`shadow: bus ${config.bus.kind}; delivery ${delivering.length ? delivering.join(', ') : 'none'}; comparator ${runtime.comparator ? 'on' : 'off'}${metricsServer ? `; metrics http://${values.metrics}/metrics` : ''}`);
    await untilStopped(io.signal);
    io.out('shadow: stopping');
    return 0;
  } catch (err) {
    if (err instanceof ConfigError || (isCutoverError(err) && err.code === ErrorCodes.USAGE)) {
      io.err(`${err.code}: ${err.message}`);
      return 2;
    }
    io.err(isCutoverError(err) ? `${err.code}: ${err.message}` : `${ErrorCodes.INTERNAL}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  } finally {
    await runtime?.close().catch((err) => io.err(`closing the shadow runtime failed: ${(err as Error).message}`));
    await bus?.close().catch(() => undefined);
    if (metricsServer) await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
  }
}

/** A minimal Prometheus endpoint for the standalone shadow side (the sidecar serves its own on the admin API). */
async function serveMetrics(registry: Registry, host: string, port: number, token: string | undefined): Promise<http.Server> {
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
    server.listen(port, host, () => resolve());
  });
  return server;
}

function untilStopped(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal) {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
      return;
    }
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
