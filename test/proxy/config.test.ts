import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSidecarConfig } from '../../proxy/sidecar.js';
import { runCli } from '../../bin/main.js';
import { ConfigError, ErrorCodes } from '../../src/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function issuesOf(input: unknown): string[] {
  try {
    parseSidecarConfig(input as never);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe(ErrorCodes.CONFIG_INVALID);
    return [...(err as ConfigError).issues];
  }
  throw new Error('expected a ConfigError');
}

describe('sidecar config', () => {
  it('accepts the contract example and fills defaults', () => {
    const config = parseSidecarConfig({
      agent: 'inventory',
      listen: '127.0.0.1:15000',
      upstream: 'http://127.0.0.1:8081',
      admin: { listen: '127.0.0.1:15001', token: 'a-token-of-sixteen-chars' },
      bus: { kind: 'kafka', brokers: ['127.0.0.1:9092'] },
      flows: [{ name: 'inventory.reserve', match: { method: 'POST', path: '/reservations' }, topic: 'commands.agent.inventory.reserve', key: 'body.sku', mode: 'shadow' }],
    });
    expect(config.capture.maxBodyBytes).toBe(256 * 1024);
    expect(config.redact.headers).toEqual(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);
    expect(config.upstreamTimeout).toBe(30_000);
    expect(config.publisher.queueSize).toBe(10_000);
  });

  it('reports every error with its path', () => {
    const issues = issuesOf({
      agent: 'Inventory',
      listen: 'nowhere',
      admin: { listen: '127.0.0.1:15001' },
      capture: { maxBodyBytes: 'lots' },
      spool: { maxBytes: '1MB', segmentBytes: '2MB' },
      publisher: { linger: 'soon' },
      routes: [{ upstream: 'ftp://x' }],
      encryption: { keyEnv: 'PII KEY', keyId: 'k', fields: ['card.number'] },
      flows: [
        { name: 'inventory.reserve', match: { method: 'FETCH', path: 'reservations' }, topic: 'reservations', key: 'cookie.sid', mode: 'canary' },
        { name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: 'commands.agent.inventory.stock', key: 'path.id', extra: 1 },
      ],
    });
    const paths = issues.map((i) => i.split(':')[0]);
    for (const expected of [
      'agent',
      'listen',
      'capture.maxBodyBytes',
      'publisher.linger',
      'routes[0].upstream',
      'encryption.keyEnv',
      'encryption.fields[0]',
      'flows[0].match.method',
      'flows[0].match.path',
      'flows[0].topic',
      'flows[0].key',
      'flows[0].mode',
      'flows[1].extra',
    ]) {
      expect(paths, `missing ${expected} in ${issues.join(' | ')}`).toContain(expected);
    }
  });

  it('reports cross-field problems with their paths', () => {
    expect(issuesOf({ agent: 'inventory', admin: { token: 'a-token-of-sixteen-chars' } })).toContain(
      'upstream: required: set upstream (in front of one agent) or routes (beside a caller)',
    );
    const more = issuesOf({
      agent: 'inventory',
      upstream: 'http://127.0.0.1:1',
      admin: { listen: '0.0.0.0:15001', auth: false },
      spool: { maxBytes: '1MB', segmentBytes: '2MB' },
      flows: [{ name: 'inventory.stock', match: { method: 'GET', path: '/stock/:sku' }, topic: 'commands.agent.inventory.stock', key: 'path.id' }],
    });
    expect(more.map((i) => i.split(':')[0]).sort()).toEqual(['admin.auth', 'flows[0].key', 'spool.segmentBytes']);
  });
});

describe('cutover sidecar --config', () => {
  it('exits 2 with every config error and its path before listening', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(
      file,
      [
        'agent: inventory',
        'listen: 127.0.0.1:15000',
        'admin: { listen: 127.0.0.1:15001, token: ${CUTOVER_TEST_UNSET_TOKEN:-short} }',
        'flows:',
        '  - name: inventory.reserve',
        '    match: { method: POST, path: reservations }',
        '    topic: commands.agent.inventory.reserve',
        '    key: body.sku',
        '    mode: shadow',
      ].join('\n'),
    );
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['sidecar', '--config', file], { out: (s) => out.push(s), err: (s) => err.push(s) });
    expect(code).toBe(2);
    expect(out).toEqual([]);
    const text = err.join('\n');
    expect(text).toContain(ErrorCodes.CONFIG_INVALID);
    expect(text).toContain('admin.token: expected at least 16 characters');
    expect(text).toContain('flows[0].match.path: expected a path starting with /');
    expect(text).toContain('upstream: required');
  });

  it('exits 2 naming a missing encryption key variable', async () => {
    const file = path.join(dir, 'nokey.yaml');
    await writeFile(
      file,
      ['agent: inventory', 'listen: 127.0.0.1:0', 'upstream: http://127.0.0.1:1', 'admin: { listen: 127.0.0.1:0, auth: false }', `dataDir: ${dir}`, 'encryption: { keyEnv: CUTOVER_TEST_MISSING_KEY, keyId: k1, fields: [/card] }'].join('\n'),
    );
    const err: string[] = [];
    const code = await runCli(['sidecar', '--config', file], { out: () => undefined, err: (s) => err.push(s) });
    expect(code).toBe(2);
    expect(err.join('\n')).toContain('encryption.keyEnv: environment variable CUTOVER_TEST_MISSING_KEY is not set');
  });
});
