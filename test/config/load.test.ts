import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfigFile, parseConfigText } from '../../src/config/load.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { ErrorCodes, type ConfigError } from '../../src/errors.js';
import { aliasBomb } from '../helpers/alias-bomb.js';

const valid = `
agent: inventory
listen: 127.0.0.1:15000
upstream: http://127.0.0.1:8081
admin: { listen: 127.0.0.1:15001, token: \${CUTOVER_ADMIN_TOKEN} }
bus: { kind: kafka, brokers: [127.0.0.1:9092] }
flows:
  - name: inventory.reserve
    match: { method: POST, path: /reservations }
    topic: commands.agent.inventory.reserve
    key: body.sku
    mode: shadow
`;

function issuesOf(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfigText(text, cutoverConfigSchema, { env });
  } catch (err) {
    expect((err as ConfigError).code).toBe(ErrorCodes.CONFIG_INVALID);
    return [...(err as ConfigError).issues];
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('accepts the README example with defaults filled in', () => {
    const config = parseConfigText(valid, cutoverConfigSchema, { env: { CUTOVER_ADMIN_TOKEN: 'a-long-enough-token' } });
    expect(config.flows[0]!.schemaVersion).toBe('1');
    expect(config.bus).toMatchObject({ kind: 'kafka', brokers: ['127.0.0.1:9092'], partitions: 6, publishTimeout: 10_000 });
    expect(config.admin.token).toBe('a-long-enough-token');
  });

  it('bus.client.producer picks the Kafka producer client: kafkajs by default, platformatic on request, nothing else', () => {
    const env = { CUTOVER_ADMIN_TOKEN: 'a-long-enough-token' };
    expect(parseConfigText(valid, cutoverConfigSchema, { env }).bus).toMatchObject({ client: { producer: 'kafkajs' } });
    const chosen = valid.replace('brokers: [127.0.0.1:9092] }', 'brokers: [127.0.0.1:9092], client: { producer: platformatic } }');
    expect(parseConfigText(chosen, cutoverConfigSchema, { env }).bus).toMatchObject({ client: { producer: 'platformatic' } });
    const unknown = valid.replace('brokers: [127.0.0.1:9092] }', 'brokers: [127.0.0.1:9092], client: { producer: librdkafka, consumer: platformatic } }');
    const issues = issuesOf(unknown, env);
    expect(issues.some((i) => i.startsWith('bus.client.producer:'))).toBe(true);
    expect(issues.some((i) => i.startsWith('bus.client') && i.includes('consumer'))).toBe(true);
  });

  it('interpolates ${VAR:-default} and reports unset variables by line', () => {
    const text = valid.replace('${CUTOVER_ADMIN_TOKEN}', '${TOKEN:-default-token-of-16+}');
    expect(parseConfigText(text, cutoverConfigSchema, { env: {} }).admin.token).toBe('default-token-of-16+');
    expect(issuesOf(valid)).toEqual(['line 5: environment variable CUTOVER_ADMIN_TOKEN is not set (use ${CUTOVER_ADMIN_TOKEN:-default} for a default)']);
  });

  describe('${VAR} values are values, never YAML', () => {
    const block = `
agent: inventory
upstream: http://127.0.0.1:8081
admin:
  listen: 127.0.0.1:15001
  token: \${CUTOVER_ADMIN_TOKEN}
`;
    const parse = (text: string, env: NodeJS.ProcessEnv) => parseConfigText(text, cutoverConfigSchema, { env });

    it('a value cannot turn admin authentication off in the flow-style admin line', () => {
      const config = parse(valid, { CUTOVER_ADMIN_TOKEN: 'SuperSecretTokenAAAA, auth: false' });
      expect(config.admin.auth).toBe(true);
      expect(config.admin.token).toBe('SuperSecretTokenAAAA, auth: false');
      const braces = parse(valid, { CUTOVER_ADMIN_TOKEN: 'SuperSecretTokenAAAA }\nadmin: { auth: false' });
      expect(braces.admin).toMatchObject({ auth: true, token: 'SuperSecretTokenAAAA }\nadmin: { auth: false' });
    });

    it('a value with " #" is kept whole, in block and flow style and in quotes', () => {
      const value = 'SuperSecretToken #not-a-comment';
      expect(parse(block, { CUTOVER_ADMIN_TOKEN: value }).admin.token).toBe(value);
      expect(parse(valid, { CUTOVER_ADMIN_TOKEN: value }).admin.token).toBe(value);
      expect(parse(block.replace('\${CUTOVER_ADMIN_TOKEN}', '"Bearer \${CUTOVER_ADMIN_TOKEN}"'), { CUTOVER_ADMIN_TOKEN: 'long-enough"y #z' }).admin.token).toBe('Bearer long-enough"y #z');
    });

    it('never echoes a value in an error: it names the variable', () => {
      const secret = 'SuperSecretTokenAAAA, tail-of-the-secret';
      const issues = issuesOf(valid.replace('listen: 127.0.0.1:15001', 'listen: \${ADMIN_LISTEN}'), { CUTOVER_ADMIN_TOKEN: secret, ADMIN_LISTEN: 'SuperSecretListen, tail' });
      expect(issues.join('\n')).not.toMatch(/SuperSecret|tail/);
      const sizes = issuesOf(`${valid}capture: { maxBodyBytes: \${MAX_BODY} }\n`, { CUTOVER_ADMIN_TOKEN: secret, MAX_BODY: 'hunter2-secret-size' });
      expect(sizes).toEqual([expect.stringContaining('${MAX_BODY}')]);
      expect(sizes.join('\n')).not.toMatch(/hunter2|SuperSecret|tail/);
    });

    it('a whole unquoted reference takes the core YAML type, never a collection; defaults and $${ still work', () => {
      const text = `${valid}publisher: { queueSize: \${Q}, requireBus: \${R:-false} }\nspool: { maxBytes: "\${S:-64MiB}" }\nlog: { level: info } # \${IN_A_COMMENT}\n`;
      const config = parse(text, { CUTOVER_ADMIN_TOKEN: 'a-long-enough-token', Q: '64' });
      expect(config.publisher).toMatchObject({ queueSize: 64, requireBus: false });
      expect(config.spool.maxBytes).toBe(67_108_864);
      expect(issuesOf(`${valid}publisher: { queueSize: \${Q} }\n`, { CUTOVER_ADMIN_TOKEN: 'a-long-enough-token', Q: '[1, 2]' })).toEqual(['publisher.queueSize: Expected number, received string']);
      const escaped = parseConfigText('x: "$${NOT_A_VAR}"\n', z.object({ x: z.string() }), { env: {} });
      expect(escaped.x).toBe('${NOT_A_VAR}');
    });
  });

  it('names the path of every error at once', () => {
    const text = `
agent: Inventory
upstream: ftp://x
admin: { auth: false, listen: 0.0.0.0:15001 }
bus: { kind: kafka, brokers: [nohost] }
flows:
  - name: ok
    match: { method: POST, path: /a }
    topic: commands.agent.inventory.reserve
  - name: ok
    match: { method: FETCH, path: reservations }
    topic: orders
    key: cookie.id
    mode: sideways
    extra: 1
`;
    const issues = issuesOf(text);
    const paths = issues.map((i) => i.split(':')[0]);
    expect(paths).toEqual(expect.arrayContaining([
      'agent', 'upstream', 'bus.brokers[0]', 'flows[1].match.method', 'flows[1].match.path', 'flows[1].topic', 'flows[1].key', 'flows[1].mode', 'flows[1].extra',
    ]));
    expect(issues.find((i) => i.startsWith('flows[1].match.path'))).toContain('expected a path starting with /');
    expect(issues.find((i) => i.startsWith('flows[1].extra'))).toContain('unknown key');
  });

  it('checks cross-field rules: duplicate flow names and admin auth', () => {
    const dup = `agent: a\nadmin: { auth: false }\nflows:\n  - { name: x, match: { method: GET, path: /a }, topic: events.a.b }\n  - { name: x, match: { method: GET, path: /b }, topic: events.a.c }\n`;
    expect(issuesOf(dup)).toEqual(['flows[1].name: duplicate flow name (also flows[0])']);
    expect(issuesOf('agent: a\n')).toEqual(['admin.token: required, or admin.tokens or admin.clientCerts (or set admin.auth: false on a loopback listen address)']);
    expect(issuesOf('agent: a\nadmin: { auth: false, listen: 0.0.0.0:1 }\n')).toEqual(['admin.auth: auth may only be disabled on a loopback listen address']);
  });

  it('refuses a flow name that cannot name its observation topic <observationsTopic>.<flow>, naming the flow', () => {
    const env = { CUTOVER_ADMIN_TOKEN: 'a-long-enough-token' };
    const named = (name: string, extra = ''): string => `${extra}${valid.replace('name: inventory.reserve', `name: "${name}"`)}`;
    expect(issuesOf(named('inventory..reserve'), env)).toEqual([
      'flows[0].name: flow "inventory..reserve" cannot name its observation topic: cutover.observations.inventory..reserve has an empty level (two dots in a row, or a dot at either end)',
    ]);
    expect(issuesOf(named('inventory.'), env)[0]).toMatch(/^flows\[0\]\.name: flow "inventory\." cannot name its observation topic: .* has an empty level/);
    expect(issuesOf(named('inventory.dlq'), env)).toEqual(['flows[0].name: flow "inventory.dlq" cannot name its observation topic: cutover.observations.inventory.dlq ends in a dlq level, the suffix of dead-letter topics']);
    // 229 characters is a valid flow name, but not below cutover.observations. (21 characters): 249 at most.
    const long = `a${'b'.repeat(228)}`;
    expect(issuesOf(named(long), env)).toEqual([`flows[0].name: flow "${long}" cannot name its observation topic: cutover.observations.${long} is 250 characters long, over the 249 a topic name may have`]);
    // One character less fits; multi-level names and "dlq" inside a level are fine.
    expect(() => parseConfigText(named(long.slice(0, 228)), cutoverConfigSchema, { env })).not.toThrow();
    expect(() => parseConfigText(named('shop.checkout.v2'), cutoverConfigSchema, { env })).not.toThrow();
    expect(() => parseConfigText(named('orders.dlq-replay'), cutoverConfigSchema, { env })).not.toThrow();
  });

  it('refuses a JSON-RPC flow that an earlier flow of its URL always takes first, naming both', () => {
    const flows = (a: string, b: string) =>
      `agent: a\nadmin: { auth: false }\nflows:\n  - { name: first, match: { method: POST, path: /a2a, ${a} }, topic: commands.agent.a.x }\n  - { name: second, match: { method: POST, path: /a2a, ${b} }, topic: commands.agent.a.y }\n`;
    expect(issuesOf(flows('rpc: [SendMessage, GetTask]', 'rpc: message/send'))).toEqual([
      'flows[1].match.rpc: every call this flow selects on POST /a2a goes to flows[0] (first), declared first: it would never see one',
    ]);
    expect(issuesOf(flows('rpc: tools/call', 'rpc: tools/call, tool: lookup'))).toHaveLength(1);
    const accepted = (text: string) => parseConfigText(text, cutoverConfigSchema, { env: {} }).flows.map((f) => f.name);
    expect(accepted(flows('rpc: tools/call, tool: lookup', 'rpc: tools/call'))).toEqual(['first', 'second']);
    expect(issuesOf(flows('rpc: tools/call, tool: [a, b]', 'rpc: tools/call, tool: b'))).toHaveLength(1);
    expect(accepted(flows('rpc: SendMessage', 'rpc: [SendMessage, GetTask]'))).toEqual(['first', 'second']);
  });

  it('reports YAML syntax errors with their line', () => {
    expect(issuesOf('agent: a\nflows: [\n')[0]).toMatch(/^line \d+: /);
  });

  it('refuses a YAML alias bomb as a config error instead of expanding it', () => {
    const bomb = `agent: a\nadmin: { auth: false }\nx:\n${aliasBomb()}\n`;
    expect(issuesOf(bomb)).toEqual([expect.stringMatching(/^too many alias expansions \(limit \d+\)/)]);
    expect(issuesOf('agent: a\nadmin: { auth: false }\nx: *nowhere\n')[0]).toMatch(/alias/i);
  });

  it('still resolves an anchor shared by many flows', () => {
    const flows = Array.from({ length: 30 }, (_, i) => `  - { name: f${i}, shadow: *shadow }`);
    const value = parseConfigText(`defaults: &shadow { target: http://127.0.0.1:9 }\nflows:\n${flows.join('\n')}\n`, z.unknown(), { env: {} }) as {
      flows: Array<{ shadow: { target: string } }>;
    };
    expect(value.flows[29]!.shadow.target).toBe('http://127.0.0.1:9');
  });

  it('accepts bracketed IPv6 listen addresses and allows auth: false on [::1]', () => {
    const config = parseConfigText('agent: a\nlisten: "[::]:15000"\nadmin: { auth: false, listen: "[::1]:15001" }\n', cutoverConfigSchema, { env: {} });
    expect(config.listen).toBe('[::]:15000');
    expect(config.admin.listen).toBe('[::1]:15001');
    expect(issuesOf('agent: a\nadmin: { auth: false, listen: "[::]:15001" }\n')).toEqual(['admin.auth: auth may only be disabled on a loopback listen address']);
    for (const listen of ['"::1:15000"', '"[::1]"', '"[nope]:1"', '"[::1]:123456"', '"[::1] :1"']) {
      expect(issuesOf(`agent: a\nadmin: { auth: false }\nlisten: ${listen}\n`)).toEqual([expect.stringMatching(/^listen: expected host:port/)]);
    }
  });

  it('rejects an unknown bus kind by naming the field', () => {
    expect(issuesOf('agent: a\nadmin: { auth: false }\nbus: { kind: rabbit }\n')[0]).toMatch(/^bus\.kind: /);
  });

  it('distinguishes a missing file', () => {
    expect(() => loadConfigFile('/nonexistent/cutover.yaml', cutoverConfigSchema)).toThrowError(expect.objectContaining({ code: ErrorCodes.CONFIG_NOT_FOUND }));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-config-'));
    const file = path.join(dir, 'c.yaml');
    writeFileSync(file, 'agent: a\nadmin: { auth: false }\n');
    expect(loadConfigFile(file, cutoverConfigSchema).agent).toBe('a');
  });
});
