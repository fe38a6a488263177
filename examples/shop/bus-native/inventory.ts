import type { Bus } from '../../../src/bus/types.js';
import { silentLogger, type Logger } from '../../../src/logger.js';
import { AgentBus } from '../../../src/sdk/index.js';
import { initialStock } from '../catalog.js';
import { parseReservation, reservationId, warehouseFor, type Reservation } from '../inventory-rules.js';
import { hash32 } from '../random.js';
import { errorBody, jsonBody, type BusAgent, type BusNativeOptions, type CallData } from './call.js';

/**
 * The inventory agent ported to the bus with the SDK: consumes `commands.agent.inventory.reserve` (the
 * sidecar's `POST /reservations` flow) and answers like the REST agent: 201 with the reservation and the
 * stock `remaining`, 409 when stock is short, 200 for an order line it already holds.
 *
 * Before it holds stock, the port asks the warehouse system where the line will be picked (an async call
 * that takes a few milliseconds). The SDK runs events of different keys in parallel, so reservations
 * are applied in the order their lookups finish, which is the order the bus delivered them only within
 * one key. Keyed by SKU, one SKU's reservations are applied in the order they were made, as on the REST
 * agent. Keyed by anything else (the demo's flow is keyed by `body.orderId`), two orders for the same SKU
 * may be applied the other way round: the same stock is taken, but the `remaining` each caller is told
 * differs, and near a sell-out the wrong order gets the 409. The readiness report shows that as parity
 * loss on `/body/remaining` (and `/status`).
 *
 * In shadow mode its stock moves like the REST agent's (its answers must track them); only facts that
 * would reach other systems (`events.inventory.reserved`) wait until it serves the flow for real.
 */

export const RESERVE_TOPIC = 'commands.agent.inventory.reserve';
export const RESERVED_FACT_TOPIC = 'events.inventory.reserved';

export interface BusInventoryOptions extends BusNativeOptions {
  /** A started bus (the agent does not close it). */
  bus: Bus;
  logger?: Logger;
}

/** The warehouse system's answer time: 2 to 40 ms, different for every line. */
function lookupLatencyMs(orderId: string, sku: string): number {
  return 2 + (hash32(`wms:${orderId}:${sku}`) % 39);
}

function locate(orderId: string, sku: string): Promise<string> {
  return new Promise((resolve) => setTimeout(() => resolve(warehouseFor(sku)), lookupLatencyMs(orderId, sku)));
}

export async function startBusInventory(options: BusInventoryOptions): Promise<BusAgent> {
  const agents = new AgentBus({ bus: options.bus, agent: 'inventory', logger: options.logger ?? silentLogger() });
  const available = initialStock();
  const reservations = new Map<string, Reservation>();
  let handled = 0;

  await agents.subscribe<CallData>(
    RESERVE_TOPIC,
    async (ctx) => {
      handled += 1;
      const parsed = parseReservation(jsonBody(ctx.data));
      if (!parsed.ok) return ctx.reply(errorBody(parsed.code, parsed.message), { status: parsed.status });
      const { orderId, sku, qty } = parsed.value;
      const id = reservationId(orderId, sku);
      const earlier = reservations.get(id);
      if (earlier) return ctx.reply(earlier, { status: 200 });
      const warehouse = await locate(orderId, sku);
      const have = available.get(sku) ?? 0;
      if (have < qty) return ctx.reply(errorBody('OUT_OF_STOCK', `only ${have} of ${sku} left`, { sku, available: have }), { status: 409 });
      available.set(sku, have - qty);
      const reservation: Reservation = { reservationId: id, orderId, sku, qty, status: 'held', warehouse, remaining: have - qty };
      reservations.set(id, reservation);
      if (!ctx.shadow) await ctx.publish(RESERVED_FACT_TOPIC, reservation, { key: sku });
      ctx.reply(reservation, { status: 201, headers: { location: `/reservations/${encodeURIComponent(id)}` } });
    },
    { group: options.group ?? 'agent.inventory', concurrency: options.concurrency ?? 16, ...(options.from ? { from: options.from } : {}) },
  );
  return {
    agents,
    get handled() {
      return handled;
    },
    close: () => agents.close(),
  };
}
