import http from 'node:http';
import { CutoverError, ErrorCodes } from '../../src/errors.js';
import type { Bus } from '../../src/bus/types.js';
import { openBus } from '../../src/bus/index.js';
import { signedBus } from '../../src/bus/signed-bus.js';
import { loadIdentity } from '../../src/events/signature.js';
import { createLogger } from '../../src/logger.js';
import { createRegistry, type Registry } from '../../src/metrics.js';
import { ShadowRuntime } from '../../shadow/runtime.js';
import { hostPort } from '../../src/config/fields.js';
import { parseListen } from '../../src/net.js';
import { ExitCode, loadConfig, parseCommandArgs, untilStopped, usageError, type CliIo, type CommandDeps } from '../io.js';

export const SHADOW_USAGE = `usage: cutover shadow --config FILE [--only delivery|comparator] [--metrics HOST:PORT]

Runs the shadow side on its own: a delivery consumer per flow with a shadow.target (consumer group
cutover.shadow.<flow>) and the comparator for the config's flows (group cutover.comparator.<flow> each).
Start several to scale out. --metrics serves Prometheus metrics at http://HOST:PORT/metrics (bearer
admin.token when the config has one; without a token only on a loopback address).`;

/**
 * `cutover shadow --config FILE`: runs delivery consumers and comparator until SIGINT/SIGTERM (or
 * `io.signal`), then drains and returns 0. Usage, config and runtime failures are thrown.
 */
export async function shadowCommand(argv: string[], io: CliIo, deps: CommandDeps = {}): Promise<number> {
  const { values } = parseCommandArgs(argv, { config: { type: 'string', short: 'c' }, only: { type: 'string' }, metrics: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, SHADOW_USAGE);
  if (values.help) {
    io.out(SHADOW_USAGE);
    return ExitCode.OK;
  }
  if (!values.config) throw usageError('shadow needs --config FILE', SHADOW_USAGE);
  if (values.only !== undefined && values.only !== 'delivery' && values.only !== 'comparator') {
    throw usageError(`--only takes delivery or comparator, got ${JSON.stringify(values.only)}`, SHADOW_USAGE);
  }
  if (values.metrics !== undefined && !hostPort.safeParse(values.metrics).success) throw usageError(`--metrics takes HOST:PORT, got ${JSON.stringify(values.metrics)}`, SHADOW_USAGE);
  const metricsAt = values.metrics === undefined ? undefined : parseListen(values.metrics);

  let runtime: ShadowRuntime | undefined;
  let bus: Bus | undefined;
  let metricsServer: http.Server | undefined;
  try {
    const config = loadConfig(values.config, deps);
    const registry = createRegistry({ defaultMetrics: true });
    if (metricsAt) {
      const token = config.admin.auth ? config.admin.token : undefined;
      if (!token && !/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(metricsAt.host)) {
        throw new CutoverError(ErrorCodes.USAGE, `--metrics ${values.metrics}: a non-loopback address needs admin.token in the config`);
      }
      metricsServer = await serveMetrics(registry, metricsAt.host, metricsAt.port, token);
    }
    const logger = deps.logger ?? createLogger({ level: config.log.level });
    const identity = loadIdentity(config);
    bus = signedBus(await (deps.openBus ?? ((c, l) => openBus(c, { logger: l })))(config.bus, logger), { ...identity, registry, logger });
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
    return ExitCode.OK;
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
