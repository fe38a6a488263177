import { checkoutRoutes } from './checkout-routes.js';
import { createJsonServer, listenAgent, type AgentHandle, type StartOptions } from './http.js';

/**
 * The payments agent: charges a checkout and refunds it, for the checkout chain only.
 *
 * - `POST /checkout/charges` (a checkout, see checkout-rules.ts) → 201 `{ paymentId, checkoutId, amount,
 *   currency, status: "captured" }`; 402 `PAYMENT_DECLINED` over the card limit (150 EUR); 400 on a
 *   malformed checkout.
 * - `POST /checkout/refunds` → 200 `{ paymentId, status: "refunded" }`.
 */
export async function start(options: StartOptions = {}): Promise<AgentHandle> {
  const served = new Map<string, number>();
  const server = createJsonServer('payments', checkoutRoutes('payments'), served, options.logger);
  return listenAgent('payments', server, served, options);
}
