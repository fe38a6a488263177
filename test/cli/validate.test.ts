import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';
import { aliasBomb } from '../helpers/alias-bomb.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s) }, out, err };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'cutover-cli-'));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('cutover validate', () => {
  it('prints OK and exits 0 for a valid file', async () => {
    const c = capture();
    const code = await runCli(['validate', '--config', file('ok.yaml', 'agent: inventory\nadmin: { auth: false }\n')], c.io);
    expect(code).toBe(0);
    expect(c.out.join('\n')).toMatch(/^OK: .*ok\.yaml \(agent inventory, bus embedded, 0 flows\)$/);
  });

  it('prints every error with its path and exits 2', async () => {
    const c = capture();
    const code = await runCli(['validate', '--config', file('bad.yaml', 'agent: a\nadmin: { auth: false }\nflows:\n  - { name: x, match: { method: POST, path: nope }, topic: t }\n')], c.io);
    expect(code).toBe(2);
    const text = c.err.join('\n');
    expect(text).toContain('CUTOVER_CONFIG_INVALID');
    expect(text).toContain('flows[0].match.path: expected a path starting with /');
    expect(text).toContain('flows[0].topic:');
  });

  it('refuses a YAML alias bomb with a config error and exit 2, not an internal error', async () => {
    const c = capture();
    const code = await runCli(['validate', '--config', file('bomb.yaml', `agent: a\nadmin: { auth: false }\nlaughs:\n${aliasBomb()}\n`)], c.io);
    expect(code).toBe(2);
    const text = c.err.join('\n');
    expect(text).toContain('CUTOVER_CONFIG_INVALID');
    expect(text).toContain('too many alias expansions');
    expect(text).not.toContain('CUTOVER_INTERNAL');
  });

  it('exits 2 with a usage error for a missing option, an unknown flag or command', async () => {
    for (const argv of [['validate'], ['validate', '--nope'], ['frobnicate']]) {
      const c = capture();
      expect(await runCli(argv, c.io)).toBe(2);
      expect(c.err.join('\n')).toContain('CUTOVER_USAGE');
    }
  });

  it('exits 2 naming a missing file', async () => {
    const c = capture();
    expect(await runCli(['validate', '--config', path.join(dir, 'absent.yaml')], c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/CUTOVER_CONFIG_NOT_FOUND: cannot read config file .*absent\.yaml/);
  });
});
