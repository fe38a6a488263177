import { customer, product, type Product } from './catalog.js';
import { hash32 } from './random.js';

/**
 * The shop's pricing policy, the part both pricing agents (REST and bus-native) share. How an amount is
 * rounded to the cent is not in here: each agent does its own, which is where the bus-native rewrite
 * went wrong.
 */

export interface QuoteItem {
  sku: string;
  qty: number;
}

export interface QuoteRequest {
  customerId: string;
  items: QuoteItem[];
}

/** Discount in percent for `qty` of `p` bought by `customerId`: volume and loyalty add up. */
export function discountPct(customerId: string, p: Product, qty: number): number {
  let pct = 0;
  if (qty >= 3) pct += 10;
  const tier = customer(customerId).tier;
  if (tier === 'gold') pct += 5;
  // Tea is the house speciality: always on offer.
  if (p.category === 'tea') pct += 5;
  return pct;
}

/** Validates a quote request; the message of the first problem, or the request. */
export function parseQuoteRequest(input: unknown): { ok: true; value: QuoteRequest } | { ok: false; status: number; code: string; message: string } {
  const body = (input ?? {}) as { customerId?: unknown; items?: unknown };
  if (typeof body.customerId !== 'string' || body.customerId.length === 0) return { ok: false, status: 400, code: 'BAD_REQUEST', message: 'customerId: expected a string' };
  if (!Array.isArray(body.items) || body.items.length === 0 || body.items.length > 50) return { ok: false, status: 400, code: 'BAD_REQUEST', message: 'items: expected 1 to 50 items' };
  const items: QuoteItem[] = [];
  for (const [i, raw] of body.items.entries()) {
    const item = (raw ?? {}) as { sku?: unknown; qty?: unknown };
    if (typeof item.sku !== 'string' || !Number.isInteger(item.qty) || (item.qty as number) <= 0 || (item.qty as number) > 1000) {
      return { ok: false, status: 400, code: 'BAD_REQUEST', message: `items[${i}]: expected { sku: string, qty: 1..1000 }` };
    }
    if (!product(item.sku)) return { ok: false, status: 422, code: 'UNKNOWN_SKU', message: `items[${i}].sku: no product ${item.sku}` };
    items.push({ sku: item.sku, qty: item.qty as number });
  }
  return { ok: true, value: { customerId: body.customerId, items } };
}

/** A quote's id: the same request gets the same id, whichever agent prices it. */
export function quoteId(request: QuoteRequest): string {
  const text = `${request.customerId}|${request.items.map((i) => `${i.sku}x${i.qty}`).join(',')}`;
  return `q_${hash32(text).toString(36).padStart(7, '0')}`;
}
