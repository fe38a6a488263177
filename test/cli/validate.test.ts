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

  it("holds a sidecar's file to the sidecar's rules: a flow outside its acl: grant fails as cutover sidecar would", async () => {
    const text = (publish: string) =>
      `agent: checkout\nupstream: http://127.0.0.1:9\nadmin: { auth: false }\nflows:\n  - { name: inventory.reserve, match: { method: POST, path: /reservations }, topic: commands.agent.inventory.reserve, mode: shadow }\nacl:\n  agents:\n    checkout: { publish: [${publish}] }\n  shadow: [checkout]\n`;
    const ok = capture();
    expect(await runCli(['validate', '--config', file('acl-ok.yaml', text('commands.agent.inventory.*'))], ok.io)).toBe(0);
    const bad = capture();
    expect(await runCli(['validate', '--config', file('acl-bad.yaml', text('commands.agent.pricing.*'))], bad.io)).toBe(2);
    expect(bad.err.join('\n')).toContain('flows[0].topic: commands.agent.inventory.reserve is outside what checkout may publish');
    // Without upstream or routes the file is a shadow side's or the CLI's: the sidecar's rules do not apply.
    const shadowSide = capture();
    expect(await runCli(['validate', '--config', file('acl-shadow.yaml', text('commands.agent.pricing.*').replace('upstream: http://127.0.0.1:9\n', ''))], shadowSide.io)).toBe(0);
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
