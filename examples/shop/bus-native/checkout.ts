import type { Bus } from '../../../src/bus/types.js';
import { silentLogger, type Logger } from '../../../src/logger.js';
import { AgentBus, serveSagaStep } from '../../../src/sdk/index.js';
import { CHECKOUT_CHAIN, CHECKOUT_RULES, type CheckoutAction } from '../checkout-rules.js';
import { jsonBody, type BusAgent, type BusNativeOptions, type CallData } from './call.js';

/**
 * The checkout chain's participants on the bus, one per agent (inventory, fraud, payments, logistics), each
 * serving its saga step and the step's undo with `serveSagaStep`. A saga command's input is the checkout
 * call as the orders sidecar dual-wrote it, so each answers `CHECKOUT_RULES[action](input.body)`: the rules
 * the REST agents' checkout routes follow, hence the same answers. The rules keep no state, so in shadow
 * mode (`ctx.shadow`) there is nothing to hold back.
 */

/** The topic of a checkout action's saga command: `commands.agent.<agent>.checkout.<action>`. */
export function checkoutTopic(agent: string, action: CheckoutAction): string {
  return `commands.agent.${agent}.checkout.${action}`;
}

export interface BusCheckoutOptions extends Omit<BusNativeOptions, 'group'> {
  /** A started bus (the participants do not close it). */
  bus: Bus;
  logger?: Logger;
  /** Consumer group of a topic. Default `agent.<agent>.<topic>` (serveSagaStep's). */
  group?: (topic: string) => string;
}

/** Starts the four participants; one BusAgent each. */
export async function startBusCheckout(options: BusCheckoutOptions): Promise<BusAgent[]> {
  const started: BusAgent[] = [];
  try {
    for (const link of CHECKOUT_CHAIN) {
      const agents = new AgentBus({ bus: options.bus, agent: link.agent, logger: options.logger ?? silentLogger() });
      let handled = 0;
      const serve = (action: CheckoutAction) => ({ command }: { command: { input: CallData } }) => {
        handled += 1;
        return CHECKOUT_RULES[action](jsonBody(command.input));
      };
      started.push({
        agents,
        get handled() {
          return handled;
        },
        close: () => agents.close(),
      });
      await serveSagaStep<CallData>(agents, {
        command: checkoutTopic(link.agent, link.action),
        run: serve(link.action),
        ...(link.undo ? { compensation: { topic: checkoutTopic(link.agent, link.undo.action), run: serve(link.undo.action) } } : {}),
        subscribe: { concurrency: options.concurrency ?? 16, ...(options.from ? { from: options.from } : {}), ...(options.group ? { group: options.group } : {}) },
      });
    }
  } catch (err) {
    for (const a of started) await a.close().catch(() => undefined);
    throw err;
  }
  return started;
}
