import path from 'node:path';
import { parseArgs } from 'node:util';
import { CutoverError, ErrorCodes } from '../../src/errors.js';

/** The demo's flags (`npm start -- --help`). */
export const DEMO_USAGE = `usage: npm start -- [options]      (or: npx tsx examples/demo/main.ts [options])

Runs the cutover demo: seven shop agents calling each other over REST, and customer service calling a
fraud desk over A2A and stock tools over MCP. The sidecars first only observe and the discovery table is
printed; then they dual-write the flows onto a bus (five REST flows, one of them the checkout chain proven
as a saga, and three JSON-RPC methods), bus-native agents, shadow instances and the saga answer from the
bus, the comparator pairs both results, then the readiness report and the flip step.

  --bus KIND         embedded (default: a SQLite file, nothing to install), redis, kafka or rabbitmq
                     redis: REDIS_URL (default redis://127.0.0.1:6379)
                     kafka: KAFKA_BROKERS (default 127.0.0.1:19092; npm run kafka:start starts one)
                     rabbitmq: RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/)
  --requests N       shop requests to send (orders and recommendations; default 1000), and beside them a
                     quarter as many questions to customer service (at least 240) and a fifth as many
                     checkouts (at least 210)
  --concurrency N    requests in flight at once (default 8)
  --seed N           seed of the traffic (default 42): the same seed sends the same requests
  --out DIR          where the reports go (default ./cutover-demo-report; overwritten)
  --fix FLOW         run with the planted bug of FLOW fixed (pricing.quote, inventory.reserve); repeatable
  --no-wait          exit when the scripted part is done (also when CI is set) instead of serving
                     the report and the admin APIs until Ctrl-C
  --log-level LEVEL  pino level of the toolkit's logs on stderr (default warn)
  -h, --help         this text`;

export type DemoBusKind = 'embedded' | 'redis' | 'kafka' | 'rabbitmq';

/** The planted bugs `--fix` can remove. */
export const FIXABLE = ['pricing.quote', 'inventory.reserve'] as const;
export type Fixable = (typeof FIXABLE)[number];

export interface DemoOptions {
  bus: DemoBusKind;
  requests: number;
  concurrency: number;
  seed: number;
  out: string;
  fixes: ReadonlySet<Fixable>;
  /** Serve the report and admin APIs until Ctrl-C after the scripted part. */
  wait: boolean;
  logLevel: string;
  redisUrl: string;
  kafkaBrokers: string[];
  rabbitmqUrl: string;
  help: boolean;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function usage(message: string): CutoverError {
  return new CutoverError(ErrorCodes.USAGE, `${message}\n\n${DEMO_USAGE}`);
}

function positiveInt(name: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw usage(`--${name} expects a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * Parses the demo's argv and environment (read here, at the edge, and nowhere deeper). Throws a
 * CutoverError CUTOVER_USAGE with the usage text on a bad flag.
 */
export function parseDemoArgs(argv: readonly string[], env: NodeJS.ProcessEnv, cwd: string = process.cwd()): DemoOptions {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        bus: { type: 'string' },
        requests: { type: 'string' },
        concurrency: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        fix: { type: 'string', multiple: true },
        'no-wait': { type: 'boolean' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw usage((err as Error).message);
  }
  const bus = (values.bus as string | undefined) ?? 'embedded';
  if (bus !== 'embedded' && bus !== 'redis' && bus !== 'kafka' && bus !== 'rabbitmq') throw usage(`--bus expects embedded, redis, kafka or rabbitmq, got ${JSON.stringify(bus)}`);
  const fixes = new Set<Fixable>();
  for (const f of (values.fix as string[] | undefined) ?? []) {
    if (!(FIXABLE as readonly string[]).includes(f)) throw usage(`--fix expects one of ${FIXABLE.join(', ')}, got ${JSON.stringify(f)}`);
    fixes.add(f as Fixable);
  }
  const logLevel = (values['log-level'] as string | undefined) ?? 'warn';
  if (!LEVELS.includes(logLevel)) throw usage(`--log-level expects one of ${LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  const seedText = values.seed as string | undefined;
  const seed = seedText === undefined ? 42 : Number(seedText);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw usage(`--seed expects a whole number from 0 to 4294967295, got ${JSON.stringify(seedText)}`);
  const ci = Boolean(env.CI) && env.CI !== 'false' && env.CI !== '0';
  return {
    bus,
    requests: positiveInt('requests', values.requests as string | undefined, 1000, 1_000_000),
    concurrency: positiveInt('concurrency', values.concurrency as string | undefined, 8, 256),
    seed,
    // `npm start` runs in the package root; INIT_CWD is where the user typed it, where they will look.
    out: path.resolve(env.INIT_CWD || cwd, (values.out as string | undefined) ?? 'cutover-demo-report'),
    fixes,
    wait: !values['no-wait'] && !ci,
    logLevel,
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    kafkaBrokers: (env.KAFKA_BROKERS || '127.0.0.1:19092').split(',').map((b) => b.trim()).filter(Boolean),
    rabbitmqUrl: env.RABBITMQ_URL || 'amqp://guest:guest@127.0.0.1:5672/',
    help: values.help === true,
  };
}
