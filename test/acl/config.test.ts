import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { cutoverConfigSchema, sidecarConfigSchema } from '../../src/config/schema.js';
import { ErrorCodes, type ConfigError } from '../../src/errors.js';

const base = `
agent: checkout
upstream: http://127.0.0.1:8080
admin: { listen: 127.0.0.1:15001, auth: false }
bus: { kind: redis }
`;
const flows = `
flows:
  - { name: inventory.reserve, match: { method: POST, path: /reservations }, topic: commands.agent.inventory.reserve }
  - { name: pricing.quote, match: { method: GET, path: /quote }, topic: commands.agent.pricing.quote }
`;

function issues(text: string, schema: typeof cutoverConfigSchema | typeof sidecarConfigSchema = sidecarConfigSchema): string[] {
  try {
    parseConfigText(text, schema);
  } catch (err) {
    expect((err as ConfigError).code).toBe(ErrorCodes.CONFIG_INVALID);
    return [...(err as ConfigError).issues];
  }
  return [];
}

describe('acl: in the config', () => {
  it('refuses a sidecar whose flows publish outside its agent grant, naming flows[i].topic', () => {
    const found = issues(`${base}${flows}acl:\n  agents:\n    checkout: { publish: [commands.agent.inventory.*] }\n`);
    expect(found).toEqual([expect.stringMatching(/^flows\[1\]\.topic: commands\.agent\.pricing\.quote is outside what checkout may publish/)]);
  });

  it('accepts it when the grant covers every flow, or when acl.enforce is off', () => {
    expect(issues(`${base}${flows}acl:\n  agents:\n    checkout: { publish: [commands.agent.inventory.*, commands.agent.pricing.#] }\n`)).toEqual([]);
    expect(issues(`${base}${flows}acl:\n  enforce: false\n  agents:\n    checkout: { publish: [] }\n`)).toEqual([]);
  });

  it('judges the signing identity, and asks for consume on the flows a deliver: side serves', () => {
    const text = `${base}${flows}identity: { agent: inventory, keyId: k1, privateKey: x }\ndeliver: { flows: [inventory.reserve] }\nacl:\n  agents:\n    inventory: { publish: [commands.agent.pricing.#] }\n`;
    expect(issues(text)).toEqual([expect.stringMatching(/^flows\[0\]\.topic: commands\.agent\.inventory\.reserve is served by deliver: but acl\.agents\.inventory\.consume does not cover it/)]);
  });

  it('needs an entry for the sidecar identity, and acl.shadow when the shadow side runs inside the sidecar', () => {
    expect(issues(`${base}acl:\n  agents:\n    inventory: {}\n`)).toEqual([expect.stringMatching(/^acl\.agents: no entry for checkout/)]);
    expect(issues(`${base.replace('kind: redis', 'kind: embedded')}acl:\n  agents:\n    checkout: {}\n`)).toEqual([expect.stringMatching(/^acl\.shadow: the shadow side runs inside this sidecar .* list checkout under acl\.shadow/)]);
  });

  it('checks patterns with the bus rules, and leaves the other commands alone', () => {
    expect(issues(`${base}acl:\n  agents:\n    checkout: { publish: [events.#.x] }\n`, cutoverConfigSchema)).toEqual([expect.stringMatching(/^acl\.agents\.checkout\.publish\[0\]: "events\.#\.x" is not a topic pattern/)]);
    // A shadow process or an operator CLI is not judged by the sidecar rule.
    expect(issues(`${base}${flows}acl:\n  agents:\n    inventory: {}\n`, cutoverConfigSchema)).toEqual([]);
  });
});
