import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { BusConfigInput } from '../../src/config/bus.js';
import { createLogger, silentLogger, type Logger } from '../../src/logger.js';
import { AgentBus, type HandlerContext } from '../../src/sdk/index.js';

/**
 * The inventory agent of the demo (examples/agents/inventory.ts), written bus-native with the SDK. It
 * serves the same calls the REST agent serves, from the topics the sidecar dual-writes them to, and
 * answers the same way, so the comparator can pair its replies with the REST agent's responses:
 *
 * - `commands.agent.inventory.reserve` (`POST /reservations`, data.body `{ sku, qty, customerId }`)
 *   → 201 `{ reservationId, sku, qty, customerId, status: "held", remaining }`, 400 / 404 / 409 as the REST agent;
 * - `commands.agent.inventory.stock` (`GET /stock/:sku`, data.params.sku) → 200 `{ sku, available, reserved }` or 404.
 *
 * A reservation that is not a shadow call also publishes the fact `events.inventory.reserved`: a real
 * side effect, so it is skipped in shadow mode (`ctx.shadow`), when the REST agent still does the real work.
 */

export interface SdkInventoryOptions {
  bus: BusConfigInput;
  /** Initial stock per SKU (the REST agent's default stock otherwise). */
  stock?: Record<string, number>;
  logger?: Logger;
  /** Consumer group; every instance of the agent shares it. */
  group?: string;
  /** Topic prefix, `commands.agent.inventory` by default (tests use their own). */
  prefix?: string;
  /** Where facts go; `events.inventory` by default. */
  factsPrefix?: string;
  dataDir?: string;
}

export interface SdkInventoryAgent {
  agents: AgentBus;
  /** Handler runs by event id (a redelivered event that was handled already does not run again). */
  readonly handled: Map<string, number>;
  /** Facts published (non-shadow reservations). */
  readonly facts: number;
  close(): Promise<void>;
}

const DEFAULT_STOCK: Record<string, number> = { 'SKU-RED-MUG': 1_000_000, 'SKU-BLUE-MUG': 1_000_000, 'SKU-TEAPOT': 50, 'SKU-KETTLE': 0 };

/** The `data` of a call event the sidecar dual-wrote: the HTTP request's business payload. */
interface CallData {
  body?: unknown;
  params?: Record<string, string>;
  query?: Record<string, string | string[]>;
}

export async function startSdkInventory(options: SdkInventoryOptions): Promise<SdkInventoryAgent> {
  const prefix = options.prefix ?? 'commands.agent.inventory';
  const facts = options.factsPrefix ?? 'events.inventory';
  const available = new Map(Object.entries(options.stock ?? DEFAULT_STOCK));
  const reserved = new Map<string, number>();
  const handled = new Map<string, number>();
  let factCount = 0;

  const agents = await AgentBus.connect(options.bus, {
    agent: 'inventory',
    logger: options.logger ?? silentLogger(),
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
  });

  const reserve = async (ctx: HandlerContext<CallData>): Promise<void> => {
    const { sku, qty, customerId } = (ctx.data?.body ?? {}) as { sku?: unknown; qty?: unknown; customerId?: unknown };
    if (typeof sku !== 'string' || !Number.isInteger(qty) || (qty as number) <= 0) {
      return ctx.reply({ error: { code: 'BAD_REQUEST', message: 'expected { sku: string, qty: positive integer }' } }, { status: 400 });
    }
    const have = available.get(sku);
    if (have === undefined) return ctx.reply({ error: { code: 'UNKNOWN_SKU', message: `no SKU ${sku}` } }, { status: 404 });
    if (have < (qty as number)) return ctx.reply({ error: { code: 'OUT_OF_STOCK', message: `only ${have} left`, available: have } }, { status: 409 });
    // The agent's own state moves in shadow mode too: its answers must track the REST agent's.
    available.set(sku, have - (qty as number));
    reserved.set(sku, (reserved.get(sku) ?? 0) + (qty as number));
    const reservation = {
      reservationId: `res_${randomUUID()}`,
      sku,
      qty: qty as number,
      customerId: typeof customerId === 'string' ? customerId : 'anonymous',
      status: 'held',
      remaining: have - (qty as number),
    };
    if (!ctx.shadow) {
      // A real side effect: only when this agent is the one serving the call.
      await ctx.publish(`${facts}.reserved`, reservation, { key: sku });
      factCount += 1;
    }
    ctx.reply(reservation, { status: 201, headers: { location: `/reservations/${reservation.reservationId}` } });
  };

  const stock = (ctx: HandlerContext<CallData>): void => {
    const sku = ctx.data?.params?.sku;
    const have = sku === undefined ? undefined : available.get(sku);
    if (sku === undefined || have === undefined) return ctx.reply({ error: { code: 'UNKNOWN_SKU', message: `no SKU ${sku}` } }, { status: 404 });
    ctx.reply({ sku, available: have, reserved: reserved.get(sku) ?? 0 }, { status: 200 });
  };

  await agents.subscribe<CallData>(
    [`${prefix}.*`],
    async (ctx) => {
      handled.set(ctx.event.id, (handled.get(ctx.event.id) ?? 0) + 1);
      const action = ctx.topic.slice(prefix.length + 1);
      if (action === 'reserve') return reserve(ctx);
      if (action === 'stock') return stock(ctx);
      ctx.reply({ error: { code: 'NOT_FOUND', message: `no handler for ${ctx.topic}` } }, { status: 404 });
    },
    { ...(options.group ? { group: options.group } : {}), concurrency: 16 },
  );

  return {
    agents,
    handled,
    get facts() {
      return factCount;
    },
    close: () => agents.close(),
  };
}

// `npx tsx examples/agents/sdk-inventory.ts --bus redis --url redis://127.0.0.1:6379` (or --bus kafka
// --brokers 127.0.0.1:9092, or --bus embedded --path .data/cutover.db) runs it on its own.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { bus: { type: 'string', default: 'embedded' }, url: { type: 'string' }, brokers: { type: 'string' }, path: { type: 'string' } } });
  const bus: BusConfigInput =
    values.bus === 'redis'
      ? { kind: 'redis', ...(values.url ? { url: values.url } : {}) }
      : values.bus === 'kafka'
        ? { kind: 'kafka', brokers: (values.brokers ?? '127.0.0.1:9092').split(',') }
        : { kind: 'embedded', ...(values.path ? { path: values.path } : {}) };
  const logger = createLogger();
  const agent = await startSdkInventory({ bus, logger });
  logger.info({ bus: bus.kind }, 'sdk inventory agent consuming commands.agent.inventory.*');
  const stop = async (): Promise<void> => {
    await agent.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}
