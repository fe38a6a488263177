import type { Bus } from '../../../src/bus/types.js';
import { silentLogger, type Logger } from '../../../src/logger.js';
import { AgentBus } from '../../../src/sdk/index.js';
import { parseQuoteRequest } from '../pricing-rules.js';
import { buildQuote, roundHalfEven } from '../pricing.js';
import { errorBody, jsonBody, type BusAgent, type BusNativeOptions, type CallData } from './call.js';

/**
 * The pricing agent ported to the bus with the SDK: it consumes `commands.agent.pricing.quote` (the
 * sidecar's `POST /quotes` flow) and replies with the quote the REST agent would give.
 *
 * Almost. The port rounds a discounted unit price with `Math.round`, half up, where the REST agent rounds
 * half to even. Most prices never land on half a cent, so the two agree on most quotes; a few products with
 * a volume or loyalty discount come out one cent higher on the bus. That is the kind of bug shadow mode is
 * for: the readiness report shows `pricing.quote` NOT_READY, with `/body/lines/N/unitPrice` as the differing field.
 */

export const QUOTE_TOPIC = 'commands.agent.pricing.quote';

export interface BusPricingOptions extends BusNativeOptions {
  /** A started bus (the agent does not close it). */
  bus: Bus;
  logger?: Logger;
  /**
   * How unit prices are rounded: `half-up` is how the port shipped (the bug); `half-even` is the fix,
   * the finance team's rule the REST agent follows.
   */
  rounding?: 'half-up' | 'half-even';
}

export async function startBusPricing(options: BusPricingOptions): Promise<BusAgent> {
  const agents = new AgentBus({ bus: options.bus, agent: 'pricing', logger: options.logger ?? silentLogger() });
  const round = options.rounding === 'half-even' ? (n: number) => roundHalfEven(n, 100) : (n: number) => Math.round(n / 100);
  let handled = 0;
  await agents.subscribe<CallData>(
    QUOTE_TOPIC,
    (ctx) => {
      handled += 1;
      const parsed = parseQuoteRequest(jsonBody(ctx.data));
      if (!parsed.ok) return ctx.reply(errorBody(parsed.code, parsed.message), { status: parsed.status });
      const quote = buildQuote(parsed.value, round);
      ctx.reply(quote, { status: 200 });
    },
    { group: options.group ?? 'agent.pricing', concurrency: options.concurrency ?? 16, ...(options.from ? { from: options.from } : {}) },
  );
  return {
    agents,
    get handled() {
      return handled;
    },
    close: () => agents.close(),
  };
}
