import { euros, product } from './catalog.js';
import { HttpError } from './http.js';
import { hash32 } from './random.js';

/**
 * What the logistics agent and the checkout chain's bus-native participant share: carriers, zones and how a
 * parcel is booked. Everything but `createdAt` follows from the request, so every instance books the same parcel.
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

/** Books the parcel for `POST /shipments` `{ orderId, shipTo, items }`, or throws HttpError (400, 422). */
export function bookShipment(input: unknown): Shipment {
  const body = (input ?? {}) as { orderId?: unknown; shipTo?: { country?: unknown; postcode?: unknown }; items?: unknown };
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
  return shipment;
}
