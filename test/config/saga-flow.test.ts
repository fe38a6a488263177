import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { ErrorCodes, isCutoverError } from '../../src/errors.js';

const SAGAS = `
sagas:
  - name: order
    steps:
      - { name: reserve, command: commands.agent.inventory.reserve, compensation: commands.agent.inventory.release }
      - { name: pay, command: commands.agent.payments.charge }
`;

function parse(flow: string): unknown {
  return parseConfigText(`agent: orders\nadmin: { auth: false }\nflows:\n  - name: orders.place\n    match: { method: POST, path: /orders }\n    topic: commands.agent.orders.place\n${flow}${SAGAS}`, cutoverConfigSchema);
}

function issues(flow: string): string[] {
  try {
    parse(flow);
  } catch (err) {
    if (isCutoverError(err) && err.code === ErrorCodes.CONFIG_INVALID) return (err as unknown as { issues: string[] }).issues;
    throw err;
  }
  throw new Error('expected CUTOVER_CONFIG_INVALID');
}

describe('flows[].saga', () => {
  it('names a saga under sagas:', () => {
    expect(parse('    saga: order\n')).toMatchObject({ flows: [{ name: 'orders.place', saga: 'order' }] });
  });

  it('an unknown saga is refused, naming the field', () => {
    expect(issues('    saga: orders\n')).toEqual(['flows[0].saga: no saga named "orders" under sagas:']);
  });

  it('a saga flow has no shadow.target: the saga is its bus side', () => {
    expect(issues('    saga: order\n    shadow: { target: "http://127.0.0.1:9000" }\n')).toEqual(['flows[0].saga: a flow answered by a saga has no shadow.target (the saga is its bus side)']);
  });
});
