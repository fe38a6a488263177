import { seededRandom } from '../shop/random.js';
import { pickCart, type ShopRequest } from './traffic.js';

/**
 * The storefront's checkouts (`POST /checkout`, the chain the `checkout` saga stands for): a seeded plan of
 * carts like the orders', mixed into the rest of the traffic. Large carts go over the payments card limit
 * and are refused, so some checkouts are undone (the hold released); a few ask for too many limited cups or
 * look like fraud and stop earlier.
 */

/**
 * Checkouts in a run of `requests`: a fifth as many, and at least 210 so the flow gets a verdict (200
 * samples). Each checkout costs the demo more than another request (five REST calls and a saga of a dozen
 * events), so no more than that.
 */
export function checkoutCount(requests: number): number {
  return Math.max(210, Math.round(requests / 5));
}

/** `n` checkouts from `seed`: the same seed gives the same checkouts. */
export function planCheckouts(seed: number, n: number, customers = 200): Array<Extract<ShopRequest, { kind: 'checkout' }>> {
  const random = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const customerId = `cus-${String(1 + Math.floor(random() * customers)).padStart(4, '0')}`;
    const checkoutId = `co${seed}-${String(i).padStart(6, '0')}`;
    return { kind: 'checkout', requestId: `req-${checkoutId}`, customerId, body: { checkoutId, customerId, ...pickCart(random, customerId) } };
  });
}

/** `checkouts` spread evenly through `plan`, so they run alongside the rest of the traffic. */
export function mixIn(plan: readonly ShopRequest[], checkouts: readonly ShopRequest[]): ShopRequest[] {
  const mixed: ShopRequest[] = [];
  let c = 0;
  plan.forEach((request, i) => {
    mixed.push(request);
    // Checkouts sent so far keep up with the share of the plan sent so far.
    while (c < checkouts.length && c * plan.length < (i + 1) * checkouts.length) mixed.push(checkouts[c++]!);
  });
  while (c < checkouts.length) mixed.push(checkouts[c++]!);
  return mixed;
}
