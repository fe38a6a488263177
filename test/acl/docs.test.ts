import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { codeBlocks, stubEnv } from '../docs/markdown.js';

/**
 * The worked example of docs/security.md, "Topic authorization", run for real: the documented lines are
 * what `cutover acl` prints for the documented config.
 */
const FILE = 'docs/security.md';
const block = (marker: string): string => {
  const found = codeBlocks(FILE).find((b) => b.marker === marker);
  expect(found, `a block marked ${marker} in ${FILE}`).toBeDefined();
  return found!.text.trim();
};

describe('docs/security.md: the cutover acl example', () => {
  it('prints the documented Kafka, Redis and RabbitMQ lines for the documented config', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cutover-acl-docs-'));
    try {
      const file = path.join(dir, 'cutover.yaml');
      await writeFile(file, block('<!-- acl-example -->'));
      const run = async (bus: string): Promise<string[]> => {
        const out: string[] = [];
        expect(await runCli(['acl', '--config', file, '--bus', bus], { out: (s) => void out.push(s), err: () => undefined }, { env: stubEnv() })).toBe(0);
        return out;
      };
      const kafka = await run('kafka');
      const documented = block('<!-- acl-kafka-output -->').split('\n');
      expect(kafka.filter((l) => l.includes('User:inventory '))).toEqual(documented);
      const redis = await run('redis');
      expect(redis.filter((l) => l.startsWith('ACL SETUSER inventory '))).toEqual([block('<!-- acl-redis-output -->')]);
      const rabbitmq = await run('rabbitmq');
      expect(rabbitmq.filter((l) => l.includes(' / inventory '))).toEqual(block('<!-- acl-rabbitmq-output -->').split('\n'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
