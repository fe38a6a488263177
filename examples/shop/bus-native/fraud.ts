import type { Bus } from '../../../src/bus/types.js';
import { silentLogger, type Logger } from '../../../src/logger.js';
import { AgentBus } from '../../../src/sdk/index.js';
import { assess, parseCheck } from '../fraud-rules.js';
import { errorBody, jsonBody, type BusAgent, type BusNativeOptions, type CallData } from './call.js';

/**
 * The fraud agent ported to the bus with the SDK: consumes `commands.agent.fraud.check` (the sidecar's
 * `POST /checks` flow) and replies with the assessment. It runs the same fraud model as the REST agent
 * (fraud-rules.ts) and keeps no state, so the port is faithful: the demo's readiness report shows
 * `fraud.check` READY.
 */

export const CHECK_TOPIC = 'commands.agent.fraud.check';

export interface BusFraudOptions extends BusNativeOptions {
  /** A started bus (the agent does not close it). */
  bus: Bus;
  logger?: Logger;
}

export async function startBusFraud(options: BusFraudOptions): Promise<BusAgent> {
  const agents = new AgentBus({ bus: options.bus, agent: 'fraud', logger: options.logger ?? silentLogger() });
  let handled = 0;
  await agents.subscribe<CallData>(
    CHECK_TOPIC,
    (ctx) => {
      handled += 1;
      const parsed = parseCheck(jsonBody(ctx.data));
      if (!parsed.ok) return ctx.reply(errorBody('BAD_REQUEST', parsed.message), { status: 400 });
      ctx.reply(assess(parsed.value), { status: 200 });
    },
    { group: options.group ?? 'agent.fraud', concurrency: options.concurrency ?? 16, ...(options.from ? { from: options.from } : {}) },
  );
  return {
    agents,
    get handled() {
      return handled;
    },
    close: () => agents.close(),
  };
}
