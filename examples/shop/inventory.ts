import { initialStock } from './catalog.js';
import { checkoutRoutes } from './checkout-routes.js';
import { createJsonServer, HttpError, listenAgent, readJson, type AgentHandle, type StartOptions } from './http.js';
import { parseReservation, reservationId, warehouseFor, type Reservation } from './inventory-rules.js';

/**
 * The inventory agent: stock per SKU and reservations against it. Its in-memory store is the system of
 * record, and requests change it in the order they arrive.
 *
 * - `POST /reservations` `{ orderId, sku, qty }` → 201 `{ reservationId, orderId, sku, qty, status: "held",
 *   warehouse, remaining }`; 409 `OUT_OF_STOCK` with `available` when stock is short; 404 for an unknown
 *   SKU; 400 on a malformed body. The same order line again answers 200 with the reservation it already
 *   holds (callers retry).
 * - `GET /stock/:sku` → 200 `{ sku, available, reserved }` or 404.
 * - `GET /reservations/:id` → 200 the reservation or 404.
 * - `POST /checkout/...`: its step of the checkout chain and the step's undo (checkout-rules.ts).
 */
export async function start(options: StartOptions = {}): Promise<AgentHandle> {
  const available = initialStock();
  const reserved = new Map<string, number>();
  const reservations = new Map<string, Reservation>();
  const served = new Map<string, number>();

  const server = createJsonServer('inventory', [
    {
      method: 'POST',
      path: '/reservations',
      handle: async ({ req }) => {
        const parsed = parseReservation(await readJson(req));
        if (!parsed.ok) throw new HttpError(parsed.status, parsed.code, parsed.message);
        const { orderId, sku, qty } = parsed.value;
        const id = reservationId(orderId, sku);
        const earlier = reservations.get(id);
        if (earlier) return { status: 200, body: earlier };
        const have = available.get(sku) ?? 0;
        if (have < qty) throw new HttpError(409, 'OUT_OF_STOCK', `only ${have} of ${sku} left`, { sku, available: have });
        available.set(sku, have - qty);
        reserved.set(sku, (reserved.get(sku) ?? 0) + qty);
        const reservation: Reservation = { reservationId: id, orderId, sku, qty, status: 'held', warehouse: warehouseFor(sku), remaining: have - qty };
        reservations.set(id, reservation);
        return { status: 201, body: reservation, headers: { location: `/reservations/${encodeURIComponent(id)}` } };
      },
    },
    {
      method: 'GET',
      path: '/stock/:sku',
      handle: ({ params }) => {
        const sku = params.sku!;
        const have = available.get(sku);
        if (have === undefined) throw new HttpError(404, 'UNKNOWN_SKU', `no SKU ${sku}`);
        return { status: 200, body: { sku, available: have, reserved: reserved.get(sku) ?? 0 } };
      },
    },
    {
      method: 'GET',
      path: '/reservations/:id',
      handle: ({ params }) => {
        const r = reservations.get(params.id!);
        if (!r) throw new HttpError(404, 'UNKNOWN_RESERVATION', `no reservation ${params.id}`);
        return { status: 200, body: r };
      },
    },
    ...checkoutRoutes('inventory'),
  ], served, options.logger);
  return listenAgent('inventory', server, served, options);
}
