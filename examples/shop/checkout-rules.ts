import { euros, product } from './catalog.js';
import { assess } from './fraud-rules.js';
import { HttpError, type Reply } from './http.js';
import { warehouseFor } from './inventory-rules.js';
import { bookShipment } from './logistics-rules.js';

/**
 * The checkout chain's rules, one per step and undo, shared by the REST agents (their checkout routes,
 * checkout-routes.ts) and their bus-native saga participants (bus-native/checkout.ts). Each takes the
 * checkout as the storefront sent it and answers from it alone, so both sides answer alike for the same
 * checkout: the saga reproduces the chain exactly when nothing is wrong.
 *
 * A checkout: `{ checkoutId, customerId, items: [{ sku, qty }], shipTo: { country, postcode } }`.
 */

export interface Checkout {
  checkoutId: string;
  customerId: string;
  items: Array<{ sku: string; qty: number }>;
  shipTo: { country: string; postcode: string };
}

/** The limited cup sells at most this many per checkout. */
export const LIMITED_PER_CHECKOUT = 2;
/** Payments refuses charges over this many euro cents (the card limit of the shop's payment provider). */
export const CARD_LIMIT_CENTS = 15_000;

export function parseCheckout(input: unknown): Checkout {
  const b = (input ?? {}) as Partial<Record<keyof Checkout, unknown>>;
  if (typeof b.checkoutId !== 'string' || !/^[A-Za-z0-9-]{1,40}$/.test(b.checkoutId)) throw new HttpError(400, 'BAD_REQUEST', 'checkoutId: expected 1-40 letters, digits or -');
  if (typeof b.customerId !== 'string') throw new HttpError(400, 'BAD_REQUEST', 'customerId: expected a string');
  const items = b.items;
  if (!Array.isArray(items) || items.length === 0) throw new HttpError(400, 'BAD_REQUEST', 'items: expected at least one item');
  for (const [i, item] of items.entries()) {
    const { sku, qty } = (item ?? {}) as { sku?: unknown; qty?: unknown };
    if (typeof sku !== 'string' || !Number.isInteger(qty) || (qty as number) <= 0) throw new HttpError(400, 'BAD_REQUEST', `items[${i}]: expected { sku: string, qty: positive integer }`);
    if (!product(sku)) throw new HttpError(404, 'UNKNOWN_SKU', `items[${i}].sku: no SKU ${sku}`);
  }
  const shipTo = (b.shipTo ?? {}) as { country?: unknown; postcode?: unknown };
  if (typeof shipTo.country !== 'string' || !/^[A-Z]{2}$/.test(shipTo.country) || typeof shipTo.postcode !== 'string') {
    throw new HttpError(400, 'BAD_REQUEST', 'shipTo: expected { country: ISO code like DE, postcode: string }');
  }
  return { checkoutId: b.checkoutId, customerId: b.customerId, items: items as Checkout['items'], shipTo: { country: shipTo.country, postcode: shipTo.postcode } };
}

/** The checkout at list prices, in euro cents. */
export function amountCents(c: Checkout): number {
  return c.items.reduce((sum, i) => sum + product(i.sku)!.priceCents * i.qty, 0);
}

/** An HttpError as the answer a REST agent gives for it. */
function answer(run: () => Reply): Reply {
  try {
    return run();
  } catch (err) {
    if (err instanceof HttpError) return { status: err.status, body: { error: { code: err.code, message: err.message, ...err.extra } } };
    throw err;
  }
}

/** The steps of the checkout chain and their undos, each answering a checkout body. */
export const CHECKOUT_RULES = {
  /** inventory: holds every line, 409 when the checkout asks for more limited cups than one may buy. */
  hold: (input: unknown): Reply =>
    answer(() => {
      const c = parseCheckout(input);
      const limited = c.items.filter((i) => i.sku === 'SKU-LIMITED-CUP').reduce((n, i) => n + i.qty, 0);
      if (limited > LIMITED_PER_CHECKOUT) throw new HttpError(409, 'LIMIT_EXCEEDED', `at most ${LIMITED_PER_CHECKOUT} SKU-LIMITED-CUP per checkout, asked for ${limited}`);
      return { status: 201, body: { holdId: `hold_${c.checkoutId}`, checkoutId: c.checkoutId, lines: c.items.map((i) => ({ ...i, warehouse: warehouseFor(i.sku) })) } };
    }),
  /** inventory: releases the hold (nothing to undo is fine: a hold never made is released too). */
  release: (input: unknown): Reply => answer(() => ({ status: 200, body: { holdId: `hold_${parseCheckout(input).checkoutId}`, status: 'released' } })),
  /** fraud: the shop's fraud model; 403 when it rejects. */
  screen: (input: unknown): Reply =>
    answer(() => {
      const c = parseCheckout(input);
      const a = assess({ orderId: c.checkoutId, customerId: c.customerId, amount: euros(amountCents(c)), shipTo: c.shipTo.country, itemCount: c.items.reduce((n, i) => n + i.qty, 0) });
      if (a.decision === 'reject') throw new HttpError(403, 'FRAUD_REJECTED', `fraud model rejects the checkout (score ${a.score})`, { score: a.score, reasons: a.reasons });
      return { status: 200, body: a };
    }),
  /** payments: charges the checkout at list prices; 402 over the card limit. */
  charge: (input: unknown): Reply =>
    answer(() => {
      const c = parseCheckout(input);
      const cents = amountCents(c);
      if (cents > CARD_LIMIT_CENTS) throw new HttpError(402, 'PAYMENT_DECLINED', `${euros(cents)} EUR is over the card limit of ${euros(CARD_LIMIT_CENTS)} EUR`, { amount: euros(cents) });
      return { status: 201, body: { paymentId: `pay_${c.checkoutId}`, checkoutId: c.checkoutId, amount: euros(cents), currency: 'EUR', status: 'captured' } };
    }),
  /** payments: refunds the charge (nothing to refund is fine). */
  refund: (input: unknown): Reply => answer(() => ({ status: 200, body: { paymentId: `pay_${parseCheckout(input).checkoutId}`, status: 'refunded' } })),
  /** logistics: books the parcel (`createdAt` is the booking time, different on every side). */
  ship: (input: unknown): Reply =>
    answer(() => {
      const c = parseCheckout(input);
      return { status: 201, body: bookShipment({ orderId: c.checkoutId, shipTo: c.shipTo, items: c.items }) };
    }),
} as const;
export type CheckoutAction = keyof typeof CHECKOUT_RULES;

/** The chain in order: the agent, its route, the action and its undo; `step` is the saga step standing for it. */
export const CHECKOUT_CHAIN = [
  { step: 'reserve', agent: 'inventory', action: 'hold', path: '/checkout/holds', undo: { action: 'release', path: '/checkout/releases' } },
  { step: 'fraud', agent: 'fraud', action: 'screen', path: '/checkout/screenings', undo: undefined },
  { step: 'pay', agent: 'payments', action: 'charge', path: '/checkout/charges', undo: { action: 'refund', path: '/checkout/refunds' } },
  { step: 'ship', agent: 'logistics', action: 'ship', path: '/checkout/shipments', undo: undefined },
] as const;
