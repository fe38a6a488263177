import { euros, product } from './catalog.js';
import { createJsonServer, HttpError, listenAgent, readJson, type AgentHandle, type StartOptions } from './http.js';
import { hash32 } from './random.js';

/**
 * The logistics agent: books a parcel with a carrier for a confirmed order.
 *
 * - `POST /shipments` `{ orderId, shipTo: { country, postcode }, items: [{ sku, qty }] }` → 201 `{ shipmentId,
 *   orderId, carrier, service, weightGrams, cost, currency, etaDays, trackingUrl, createdAt }` with a
 *   `location` header; 400 on a malformed body, 422 when nothing ships there.
 * - `GET /shipments/:id` → 200 the shipment or 404.
 *
 * Everything but `createdAt` follows from the request, so a second instance (a shadow) books the same parcel.
 */

const ZONES: Record<string, { carrier: string; baseCents: number; perKgCents: number; etaDays: number }> = {
  domestic: { carrier: 'DHL', baseCents: 499, perKgCents: 60, etaDays: 2 },
  eu: { carrier: 'DPD', baseCents: 899, perKgCents: 120, etaDays: 4 },
  world: { carrier: 'UPS', baseCents: 2490, perKgCents: 450, etaDays: 7 },
};
const EU = new Set(['AT', 'BE', 'DK', 'ES', 'FI', 'FR', 'IE', 'IT', 'LU', 'NL', 'PL', 'PT', 'SE']);
const EMBARGOED = new Set(['KP']);

export interface Shipment {
  shipmentId: string;
  orderId: string;
  carrier: string;
  service: 'parcel' | 'freight';
  weightGrams: number;
  cost: number;
  currency: 'EUR';
  etaDays: number;
  trackingUrl: string;
  createdAt: string;
}

export async function start(options: StartOptions = {}): Promise<AgentHandle> {
  const shipments = new Map<string, Shipment>();
  const served = new Map<string, number>();
  const server = createJsonServer('logistics', [
    {
      method: 'POST',
      path: '/shipments',
      handle: async ({ req }) => {
        const body = ((await readJson(req)) ?? {}) as { orderId?: unknown; shipTo?: { country?: unknown; postcode?: unknown }; items?: unknown };
        const country = body.shipTo?.country;
        if (typeof body.orderId !== 'string' || typeof country !== 'string' || typeof body.shipTo?.postcode !== 'string' || !Array.isArray(body.items) || body.items.length === 0) {
          throw new HttpError(400, 'BAD_REQUEST', 'expected { orderId, shipTo: { country, postcode }, items: [{ sku, qty }] }');
        }
        if (EMBARGOED.has(country)) throw new HttpError(422, 'NO_CARRIER', `no carrier ships to ${country}`);
        let weightGrams = 250; // box and filling
        for (const raw of body.items as Array<{ sku?: unknown; qty?: unknown }>) {
          const p = typeof raw?.sku === 'string' ? product(raw.sku) : undefined;
          if (!p || !Number.isInteger(raw.qty) || (raw.qty as number) <= 0) throw new HttpError(400, 'BAD_REQUEST', 'items: expected known SKUs with positive qty');
          weightGrams += p.weightGrams * (raw.qty as number);
        }
        const zone = ZONES[country === 'DE' ? 'domestic' : EU.has(country) ? 'eu' : 'world']!;
        const service = weightGrams > 10_000 ? 'freight' : 'parcel';
        const costCents = zone.baseCents + Math.ceil(weightGrams / 1000) * zone.perKgCents + (service === 'freight' ? 1500 : 0);
        const shipmentId = `shp_${hash32(`shipment:${body.orderId}`).toString(36).padStart(7, '0')}`;
        const shipment: Shipment = {
          shipmentId,
          orderId: body.orderId,
          carrier: zone.carrier,
          service,
          weightGrams,
          cost: euros(costCents),
          currency: 'EUR',
          etaDays: zone.etaDays + (service === 'freight' ? 3 : 0),
          trackingUrl: `https://track.example.com/${zone.carrier.toLowerCase()}/${shipmentId}`,
          createdAt: new Date().toISOString(),
        };
        shipments.set(shipmentId, shipment);
        return { status: 201, body: shipment, headers: { location: `/shipments/${shipmentId}` } };
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
  ], served, options.logger);
  return listenAgent('logistics', server, served, options);
}
