import { CHECKOUT_CHAIN } from './checkout-rules.js';
import type { JsonClient, JsonResponse } from './http.js';

/**
 * The orders agent's checkout chain, `POST /checkout`: it calls inventory (hold the lines), fraud (screen),
 * payments (charge) and logistics (ship) over REST in turn, passing each the checkout as it came. When one
 * refuses (any status but 2xx), it undoes by hand what the earlier ones did, last first (refund, release the
 * hold), and answers with the refusing agent's answer; when all succeed, with logistics' shipment. That is
 * the outcome a saga of the same steps gives, so the `checkout` saga can stand for the chain.
 */

/** Base URLs of the agents the chain calls. */
export type CheckoutDeps = Record<(typeof CHECKOUT_CHAIN)[number]['agent'], string>;

export async function runCheckout(client: JsonClient, deps: CheckoutDeps, checkout: unknown, headers: Record<string, string>): Promise<JsonResponse> {
  const done: Array<(typeof CHECKOUT_CHAIN)[number]> = [];
  let answer: JsonResponse | undefined;
  for (const link of CHECKOUT_CHAIN) {
    answer = await client.post(`${deps[link.agent]}${link.path}`, checkout, headers);
    if (answer.status < 200 || answer.status >= 300) {
      // An undo that fails leaves the step done: the shop's operators reconcile it from the agents' logs.
      for (const d of done.reverse()) if (d.undo) await client.post(`${deps[d.agent]}${d.undo.path}`, checkout, headers);
      return answer;
    }
    done.push(link);
  }
  return answer!;
}
