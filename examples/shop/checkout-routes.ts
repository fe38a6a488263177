import { CHECKOUT_CHAIN, CHECKOUT_RULES } from './checkout-rules.js';
import { readJson, type Route } from './http.js';

/**
 * The routes an agent serves for the checkout chain (`POST /checkout/...`, checkout-rules.ts): its step of
 * the chain and the step's undo. Apart from the agent's own routes, so the chain touches none of them.
 */
export function checkoutRoutes(agent: (typeof CHECKOUT_CHAIN)[number]['agent']): Route[] {
  return CHECKOUT_CHAIN.filter((link) => link.agent === agent).flatMap((link) =>
    [{ action: link.action, path: link.path }, ...(link.undo ? [link.undo] : [])].map((r) => ({
      method: 'POST',
      path: r.path,
      handle: async ({ req }) => CHECKOUT_RULES[r.action](await readJson(req)),
    })),
  );
}
