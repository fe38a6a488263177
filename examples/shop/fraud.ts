import { assess, parseCheck } from './fraud-rules.js';
import { checkoutRoutes } from './checkout-routes.js';
import { createJsonServer, HttpError, listenAgent, readJson, type AgentHandle, type StartOptions } from './http.js';

/**
 * The fraud agent: scores an order before it ships.
 *
 * - `POST /checks` `{ orderId, customerId, amount, shipTo, itemCount }` → 200 `{ orderId, decision:
 *   approve|review|reject, score, reasons, modelVersion }`; 400 on a malformed body.
 * - `POST /checkout/...`: its step of the checkout chain and the step's undo (checkout-rules.ts).
 */
export async function start(options: StartOptions = {}): Promise<AgentHandle> {
  const served = new Map<string, number>();
  const server = createJsonServer('fraud', [
    {
      method: 'POST',
      path: '/checks',
      handle: async ({ req }) => {
        const parsed = parseCheck(await readJson(req));
        if (!parsed.ok) throw new HttpError(400, 'BAD_REQUEST', parsed.message);
        return { status: 200, body: assess(parsed.value) };
      },
    },
    ...checkoutRoutes('fraud'),
  ], served, options.logger);
  return listenAgent('fraud', server, served, options);
}
