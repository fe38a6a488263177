import { Registry } from 'prom-client';
import type { AdminOptions } from '../../proxy/admin.js';
import type { AdminControl } from '../../proxy/admin-control.js';
import { FlowTable } from '../../proxy/flow-table.js';
import type { Outbox } from '../../proxy/outbox.js';
import { silentLogger } from '../../src/logger.js';

/**
 * Options of an admin server for tests: no flows, a healthy bus, an idle publisher, and a control whose
 * flips are recorded in `flips` (`<flow>-><mode>`) instead of written. Auth on, no tokens unless given.
 */
export function adminFixture(overrides: Partial<AdminOptions> = {}): { options: AdminOptions; flips: string[] } {
  const flips: string[] = [];
  const control: AdminControl = {
    flip: async (input) => {
      flips.push(`${input.flow}->${input.to}`);
      return { action: 'noop', flow: input.flow, mode: input.to } as never;
    },
    history: async () => [],
    report: async () => ({ json: '{"flows":[]}', html: '<html></html>' }),
  };
  const options: AdminOptions = {
    token: undefined,
    auth: true,
    agent: 'inventory',
    flows: new FlowTable([]),
    publisher: { queueDepth: 0, spoolDepth: 0, stats: {}, lastFailure: undefined } as unknown as Outbox,
    registry: new Registry(),
    busHealth: async () => ({ ok: true }) as never,
    listening: () => true,
    logger: silentLogger(),
    control,
    ...overrides,
  };
  return { options, flips };
}
