import { product } from './catalog.js';

/** What both inventory agents (REST and bus-native) share: the request format and where stock sits. */

export interface ReservationRequest {
  orderId: string;
  sku: string;
  qty: number;
}

export interface Reservation {
  reservationId: string;
  orderId: string;
  sku: string;
  qty: number;
  status: 'held';
  warehouse: string;
  /** Units of the SKU still available once this reservation is held. */
  remaining: number;
}

export function parseReservation(input: unknown): { ok: true; value: ReservationRequest } | { ok: false; status: number; code: string; message: string } {
  const body = (input ?? {}) as { orderId?: unknown; sku?: unknown; qty?: unknown };
  if (typeof body.orderId !== 'string' || body.orderId.length === 0) return { ok: false, status: 400, code: 'BAD_REQUEST', message: 'orderId: expected a string' };
  if (typeof body.sku !== 'string' || !Number.isInteger(body.qty) || (body.qty as number) <= 0) {
    return { ok: false, status: 400, code: 'BAD_REQUEST', message: 'expected { orderId, sku: string, qty: positive integer }' };
  }
  if (!product(body.sku)) return { ok: false, status: 404, code: 'UNKNOWN_SKU', message: `no SKU ${body.sku}` };
  return { ok: true, value: { orderId: body.orderId, sku: body.sku, qty: body.qty as number } };
}

/** One reservation per order line: the id says which, so a retried call finds the first one. */
export function reservationId(orderId: string, sku: string): string {
  return `res_${orderId}_${sku}`;
}

/** The warehouse a SKU is picked from. */
export function warehouseFor(sku: string): string {
  const p = product(sku);
  return p?.category === 'brewing' ? 'WH-LEIPZIG' : 'WH-HAMBURG';
}
