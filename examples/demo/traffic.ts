import { CATALOG, customer } from '../shop/catalog.js';
import type { Checkout } from '../shop/checkout-rules.js';
import { JsonClient } from '../shop/http.js';
import { pickWeighted, seededRandom } from '../shop/random.js';

/**
 * The shop's customers, simulated: a seeded plan of storefront requests (browse recommendations, place
 * orders; checkouts come from checkout-traffic.ts), then sent with bounded concurrency. The same seed gives
 * the same plan.
 */

/** What the storefront sends to place an order. */
export interface Cart {
  cartId: string;
  customerId: string;
  items: Array<{ sku: string; qty: number }>;
  shipTo: { country: string; postcode: string };
}

export type ShopRequest =
  | { kind: 'browse'; requestId: string; customerId: string; path: string }
  | { kind: 'order'; requestId: string; customerId: string; body: Cart }
  | { kind: 'checkout'; requestId: string; customerId: string; body: Checkout };

/** How popular each product is: a mug sale is on, and the limited cup draws a crowd. */
const POPULARITY: Record<string, number> = {
  'SKU-RED-MUG': 18,
  'SKU-BLUE-MUG': 10,
  'SKU-LIMITED-CUP': 9,
  'SKU-SENCHA': 9,
  'SKU-ASSAM': 8,
  'SKU-EARL-GREY': 6,
  'SKU-TEAPOT': 6,
  'SKU-KETTLE': 5,
  'SKU-CANISTER': 6,
  'SKU-TRAY': 4,
  'SKU-TRAVEL-MUG': 5,
  'SKU-FILTERS': 6,
  'SKU-SCALE': 4,
  'SKU-GRINDER': 3,
};
const PRODUCTS = CATALOG.map((p) => ({ value: p.sku, weight: POPULARITY[p.sku] ?? 1 }));
const QTY = [
  { value: 1, weight: 58 },
  { value: 2, weight: 20 },
  { value: 3, weight: 12 },
  { value: 4, weight: 6 },
  { value: 6, weight: 4 },
];
const LINES = [
  { value: 1, weight: 50 },
  { value: 2, weight: 30 },
  { value: 3, weight: 15 },
  { value: 4, weight: 5 },
];
const ABROAD = ['DE', 'FR', 'NL', 'AT', 'US'];

/** `n` storefront requests from `seed`: about two orders for every recommendation page. */
export function planTraffic(seed: number, n: number, customers = 200): ShopRequest[] {
  const random = seededRandom(seed);
  const plan: ShopRequest[] = [];
  for (let i = 0; i < n; i++) {
    const customerId = `cus-${String(1 + Math.floor(random() * customers)).padStart(4, '0')}`;
    const requestId = `req-${seed}-${String(i).padStart(6, '0')}`;
    if (random() < 0.34) {
      plan.push({ kind: 'browse', requestId, customerId, path: `/recommendations/${customerId}?limit=4` });
      continue;
    }
    plan.push({ kind: 'order', requestId, customerId, body: { cartId: `c${seed}-${String(i).padStart(6, '0')}`, customerId, ...pickCart(random, customerId) } });
  }
  return plan;
}

/** A customer's cart, drawn from `random`: popular products, a few lines, now and then shipped abroad. */
export function pickCart(random: () => number, customerId: string): { items: Cart['items']; shipTo: Cart['shipTo'] } {
  const items = new Map<string, number>();
  const lines = pickWeighted(random, LINES);
  while (items.size < lines) items.set(pickWeighted(random, PRODUCTS), pickWeighted(random, QTY));
  const home = customer(customerId).country;
  // Now and then a gift, shipped to someone abroad.
  const country = random() < 0.1 ? ABROAD[Math.floor(random() * ABROAD.length)]! : home;
  return { items: [...items].map(([sku, qty]) => ({ sku, qty })), shipTo: { country, postcode: String(10_000 + Math.floor(random() * 89_999)) } };
}

export interface TrafficStats {
  sent: number;
  browses: number;
  orders: number;
  checkouts: number;
  /** Answers by kind and status, like `order 201`. */
  statuses: Map<string, number>;
  /** Requests that got no HTTP answer at all. */
  failures: number;
  elapsedMs: number;
}

export interface DriveOptions {
  ordersUrl: string;
  recommendationUrl: string;
  /** Where checkouts go (`POST /checkout`): the orders agent, or the sidecar in front of it. Default `ordersUrl`. */
  checkoutUrl?: string;
  concurrency: number;
  /** Called after each answer with the number of requests done. */
  onProgress?: (done: number) => void;
  /** Stops sending new requests (those in flight finish). */
  signal?: AbortSignal;
}

/** Sends `plan` with at most `concurrency` requests in flight, in plan order, until done or `signal` aborts. */
export async function driveTraffic(plan: readonly ShopRequest[], options: DriveOptions): Promise<TrafficStats> {
  const client = new JsonClient('storefront', { maxSockets: options.concurrency, timeoutMs: 30_000 });
  const stats: TrafficStats = { sent: 0, browses: 0, orders: 0, checkouts: 0, statuses: new Map(), failures: 0, elapsedMs: 0 };
  const started = performance.now();
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.length && !options.signal?.aborted) {
      const request = plan[next++]!;
      stats.sent += 1;
      try {
        const headers = { 'x-request-id': request.requestId };
        const res =
          request.kind === 'browse'
            ? await client.get(`${options.recommendationUrl}${request.path}`, headers)
            : request.kind === 'order'
              ? await client.post(`${options.ordersUrl}/orders`, request.body, headers)
              : await client.post(`${options.checkoutUrl ?? options.ordersUrl}/checkout`, request.body, headers);
        const label = `${request.kind} ${res.status}`;
        stats.statuses.set(label, (stats.statuses.get(label) ?? 0) + 1);
      } catch {
        stats.failures += 1;
      }
      if (request.kind === 'browse') stats.browses += 1;
      else if (request.kind === 'order') stats.orders += 1;
      else stats.checkouts += 1;
      done += 1;
      options.onProgress?.(done);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, plan.length) }, worker));
  } finally {
    client.close();
  }
  stats.elapsedMs = performance.now() - started;
  return stats;
}
