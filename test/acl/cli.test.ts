import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { rabbitmqPermissions } from '../../src/acl/rabbitmq.js';
import { applyRabbitmqPermissions } from '../../src/bus/rabbitmq/acls.js';
import { aclSchema } from '../../src/config/acl.js';
import { ErrorCodes } from '../../src/errors.js';

const acl = `
acl:
  agents:
    checkout:  { publish: [commands.agent.inventory.*], consume: [events.order.#] }
    inventory: { publish: [events.inventory.#], consume: [commands.agent.inventory.#] }
  topics: [commands.agent.inventory.reserve]
`;
const head = (bus: string) => `agent: ops\nadmin: { listen: 127.0.0.1:15001, auth: false }\nbus: ${bus}\n`;

describe('cutover acl (printing; --apply runs against real brokers in test/acl/*.e2e.test.ts)', () => {
  let dir: string;
  const files: Record<string, string> = {};
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cutover-acl-cli-'));
    const write = async (name: string, text: string): Promise<void> => {
      files[name] = path.join(dir, `${name}.yaml`);
      await writeFile(files[name]!, text);
    };
    await write('kafka', head('{ kind: kafka, brokers: [k1:9093, k2:9093], clientId: shop }') + acl);
    await write('redis', head('{ kind: redis, prefix: "shop:" }') + acl);
    await write('rabbitmq', head('{ kind: rabbitmq, url: "amqp://u:p@rabbit.example.internal:5672/prod", prefix: shop }') + acl);
    await write('embedded', head('{ kind: embedded }') + acl);
    await write('none', head('{ kind: redis }'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function cli(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['acl', ...argv], { out: (s) => void out.push(s), err: (s) => void err.push(s) }, { env: {} });
    return { code, out, err };
  }

  it('kafka by default for a kafka config: kafka-acls.sh lines with the bus brokers and client id', async () => {
    const { code, out, err } = await cli('--config', files.kafka!);
    expect(code).toBe(0);
    expect(err).toHaveLength(1);
    expect(out).toContain('kafka-acls.sh --bootstrap-server k1:9093,k2:9093 --command-config admin.properties --add --allow-principal User:checkout --operation Write --operation Create --operation Describe --topic commands.agent.inventory.reserve --resource-pattern-type literal');
    expect(out).toContain('kafka-acls.sh --bootstrap-server k1:9093,k2:9093 --command-config admin.properties --add --allow-principal User:inventory --operation Read --operation Delete --group shop.read. --resource-pattern-type prefixed');
  });

  it('redis: one ACL SETUSER per identity under the bus prefix; warns about rules it cannot grant', async () => {
    const { code, out, err } = await cli('--config', files.redis!, '--bus', 'redis');
    expect(code).toBe(0);
    expect(out.filter((l) => l.startsWith('ACL SETUSER'))).toHaveLength(2);
    expect(out.find((l) => l.startsWith('ACL SETUSER inventory'))).toContain('~shop:t:events.inventory.*');
    // checkout consumes events.order.#: its dead letters name no known topic, so none are granted.
    expect(err).toEqual([expect.stringMatching(/^warning: checkout: events\.order\.# \(dead letters\) matches none of the topics/)]);
  });

  it('rabbitmq: two rabbitmqctl lines per identity, in the vhost of the bus URL, under the bus prefix', async () => {
    const printed = await cli('--config', files.rabbitmq!);
    expect(printed.code).toBe(0);
    const lines = printed.out.filter((l) => l.startsWith('rabbitmqctl '));
    expect(lines).toHaveLength(4);
    expect(lines).toContain("rabbitmqctl set_topic_permissions -p prod inventory shop.topics '^((?!.*\\.dlq$)events\\.inventory(\\.[A-Za-z0-9_-]+)*|(?!.*\\.dlq$)cutover\\.observations(\\.[A-Za-z0-9_-]+)*|commands\\.agent\\.inventory(\\.[A-Za-z0-9_-]+)*\\.dlq|(?!.*\\.dlq$)cutover\\.replies\\.checkout(\\.[A-Za-z0-9_-]+)*|cutover\\.control)$' '^((?!.*\\.dlq$)events\\.inventory(\\.[A-Za-z0-9_-]+)*|(?!.*\\.dlq$)cutover\\.observations(\\.[A-Za-z0-9_-]+)*|commands\\.agent\\.inventory(\\.[A-Za-z0-9_-]+)*\\.dlq|(?!.*\\.dlq$)cutover\\.replies\\.checkout(\\.[A-Za-z0-9_-]+)*|cutover\\.control|cutover\\.parity|(?!.*\\.dlq$)commands\\.agent\\.inventory(\\..+)?|(?!.*\\.dlq$)cutover\\.replies\\.inventory(\\..+)?)$'");
    // Another bus's config prints the lines for the default prefix and vhost, and cannot apply them.
    expect((await cli('--config', files.redis!, '--bus', 'rabbitmq')).out.filter((l) => l.startsWith('rabbitmqctl set_topic_permissions -p / checkout cutover.topics '))).toHaveLength(1);
    const applied = await cli('--config', files.redis!, '--bus', 'rabbitmq', '--apply');
    expect(applied.code).toBe(2);
    expect(applied.err.join('\n')).toContain("CUTOVER_USAGE: --apply --bus rabbitmq applies with the config's own bus connection, but its bus is redis");
    expect((await cli('--config', files.redis!, '--node', 'rabbit@h')).err.join('\n')).toContain('CUTOVER_USAGE: --node is for --bus rabbitmq, not redis');
  });

  it('rabbitmq --apply without rabbitmqctl: a typed error naming the command', async () => {
    const [p] = rabbitmqPermissions(aclSchema.parse({ agents: { a: { publish: ['x'] } } }));
    const err = await applyRabbitmqPermissions([p!], { command: 'no-such-rabbitmqctl' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCodes.BUS_MISCONFIGURED });
    expect((err as Error).message).toMatch(/^no-such-rabbitmqctl: not found on PATH/);
  });

  it('usage and config errors exit 2 with a typed message', async () => {
    expect((await cli('--help')).code).toBe(0);
    const cases: Array<[string[], string]> = [
      [[], 'CUTOVER_USAGE: acl needs --config FILE'],
      [['--config', files.embedded!], 'CUTOVER_USAGE: acl needs --bus kafka|redis|rabbitmq'],
      [['--config', files.redis!, '--bus', 'nats'], 'CUTOVER_USAGE: --bus nats: expected kafka, redis or rabbitmq'],
      [['--config', files.none!], 'CUTOVER_CONFIG_INVALID: '],
      [['--config', files.redis!, '--bus', 'kafka', '--apply'], 'CUTOVER_USAGE: --apply --bus kafka applies with the config'],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await cli(...argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(err.join('\n')).toContain(message);
    }
  });
});
