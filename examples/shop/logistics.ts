import { checkoutRoutes } from './checkout-routes.js';
import { createJsonServer, HttpError, listenAgent, readJson, type AgentHandle, type StartOptions } from './http.js';
import { bookShipment, type Shipment } from './logistics-rules.js';

/**
 * The logistics agent: books a parcel with a carrier for a confirmed order.
 *
 * - `POST /shipments` `{ orderId, shipTo: { country, postcode }, items: [{ sku, qty }] }` → 201 `{ shipmentId,
 *   orderId, carrier, service, weightGrams, cost, currency, etaDays, trackingUrl, createdAt }` with a
 *   `location` header; 400 on a malformed body, 422 when nothing ships there.
 * - `GET /shipments/:id` → 200 the shipment or 404.
 * - `POST /checkout/...`: its step of the checkout chain and the step's undo (checkout-rules.ts).
 *
 * Everything but `createdAt` follows from the request, so a second instance (a shadow) books the same parcel.
 */

export type { Shipment };

export async function start(options: StartOptions = {}): Promise<AgentHandle> {
  const shipments = new Map<string, Shipment>();
  const served = new Map<string, number>();
  const server = createJsonServer('logistics', [
    {
      method: 'POST',
      path: '/shipments',
      handle: async ({ req }) => {
        const shipment = bookShipment(await readJson(req));
        shipments.set(shipment.shipmentId, shipment);
        return { status: 201, body: shipment, headers: { location: `/shipments/${shipment.shipmentId}` } };
      },
    },
    {
      method: 'GET',
      path: '/shipments/:id',
      handle: ({ params }) => {
        const s = shipments.get(params.id!);
        if (!s) throw new HttpError(404, 'UNKNOWN_SHIPMENT', `no shipment ${params.id}`);
        return { status: 200, body: s };
      },
    },
    ...checkoutRoutes('logistics'),
  ], served, options.logger);
  return listenAgent('logistics', server, served, options);
}
