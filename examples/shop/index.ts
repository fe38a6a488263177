import type { Logger } from '../../src/logger.js';
import { start as startFraud } from './fraud.js';
import type { AgentHandle } from './http.js';
import { start as startInventory } from './inventory.js';
import { start as startLogistics } from './logistics.js';
import { start as startOrders } from './orders.js';
import { start as startPayments } from './payments.js';
import { start as startPricing } from './pricing.js';
import { start as startRecommendation } from './recommendation.js';

/**
 * The online shop: seven agents calling each other over REST.
 *
 * ```
 * recommendation ──▶ pricing (POST /quotes), inventory (GET /stock/:sku)
 * orders         ──▶ pricing (POST /quotes), inventory (POST /reservations), fraud (POST /checks),
 *                    logistics (POST /shipments)
 * orders (POST /checkout, the checkout chain) ──▶ inventory, fraud, payments, logistics (POST /checkout/...)
 * ```
 */

/** The agents other agents call: the ones a sidecar can stand in front of. */
export const CALLEE_AGENTS = ['pricing', 'inventory', 'fraud', 'logistics', 'payments'] as const;
export type CalleeAgent = (typeof CALLEE_AGENTS)[number];
export const AGENTS = [...CALLEE_AGENTS, 'orders', 'recommendation'] as const;
export type AgentName = (typeof AGENTS)[number];

/** Starts one callee agent on its own (the demo runs a second logistics as a shadow instance). */
export const startCallee: Readonly<Record<CalleeAgent, (options?: { logger?: Logger; port?: number }) => Promise<AgentHandle>>> = {
  pricing: startPricing,
  inventory: startInventory,
  fraud: startFraud,
  logistics: startLogistics,
  payments: startPayments,
};

export interface ShopOptions {
  logger?: Logger;
  /**
   * Called once per callee agent after it started; returns the base URL its callers should use. The
   * demo starts a sidecar in front of the agent here and returns the sidecar's URL. Default: the agent's own.
   */
  front?: (agent: CalleeAgent, handle: AgentHandle) => Promise<string>;
}

export interface Shop {
  readonly agents: Readonly<Record<AgentName, AgentHandle>>;
  /** The base URL callers use for each callee (a sidecar's, when `front` put one in front). */
  readonly callees: Readonly<Record<CalleeAgent, string>>;
  /** Stops the callers first, then the callees. */
  close(): Promise<void>;
}

/** Starts the seven agents on free local ports, callees first, wired through `front`. */
export async function startShop(options: ShopOptions = {}): Promise<Shop> {
  const started: AgentHandle[] = [];
  const common = options.logger ? { logger: options.logger } : {};
  try {
    const callee = async (name: CalleeAgent) => {
      const handle = await startCallee[name](common);
      started.push(handle);
      return { handle, url: options.front ? await options.front(name, handle) : handle.url };
    };
    const pricing = await callee('pricing');
    const inventory = await callee('inventory');
    const fraud = await callee('fraud');
    const logistics = await callee('logistics');
    const payments = await callee('payments');
    const callees = { pricing: pricing.url, inventory: inventory.url, fraud: fraud.url, logistics: logistics.url, payments: payments.url };
    const orders = await startOrders({ ...common, deps: callees });
    started.push(orders);
    const recommendation = await startRecommendation({ ...common, deps: { pricing: callees.pricing, inventory: callees.inventory } });
    started.push(recommendation);
    return {
      agents: { pricing: pricing.handle, inventory: inventory.handle, fraud: fraud.handle, logistics: logistics.handle, payments: payments.handle, orders, recommendation },
      callees,
      close: async () => {
        for (const handle of [...started].reverse()) await handle.close();
      },
    };
  } catch (err) {
    for (const handle of started.reverse()) await handle.close().catch(() => undefined);
    throw err;
  }
}
