import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../bin/main.js';

/**
 * Every `cutover …` command line (also as `node bin/cutover.js …` or `node_modules/.bin/cutover …`) in
 * README.md and docs/*.md names a real command, and every --flag it uses is one that command's own --help
 * lists: a renamed flag or command fails here instead of rotting in the docs.
 */
const root = path.resolve(import.meta.dirname, '../..');
const files = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

function commandLines(text: string): string[] {
  const lines: string[] = [];
  // Fenced blocks: whole lines; inline code spans: the span.
  for (const block of text.matchAll(/```[a-z]*\n([\s\S]*?)```/g)) lines.push(...block[1]!.split('\n'));
  for (const span of text.replace(/```[\s\S]*?```/g, '').matchAll(/`([^`\n]+)`/g)) lines.push(span[1]!);
  return lines
    .map((l) => l.replace(/^\s*\$\s*/, '').trim())
    // The ways the docs start the CLI (npx, the launcher run by node, the installed bin) are all `cutover`.
    .map((l) => l.replace(/^(npx cutover|node \S*bin\/cutover\.js|\S*node_modules\/\.bin\/cutover)(?=\s)/, 'cutover'))
    .filter((l) => /^cutover [a-z]/.test(l))
    .map((l) => l.replace(/\s+#.*$/, ''));
}

async function helpOf(command: string): Promise<string | undefined> {
  const out: string[] = [];
  const code = await runCli([command, '--help'], { out: (s) => void out.push(s), err: (s) => void out.push(s) });
  return code === 0 ? out.join('\n') : undefined;
}

describe('command lines in the docs', () => {
  const found = files.flatMap((file) => commandLines(readFileSync(path.join(root, file), 'utf8')).map((line) => ({ file, line })));

  it('finds the documented commands (the extraction itself works)', () => {
    expect(found.length).toBeGreaterThan(20);
  });

  it('use real commands and flags', async () => {
    const help = new Map<string, string | undefined>();
    const problems: string[] = [];
    for (const { file, line } of found) {
      const command = line.split(/\s+/)[1]!;
      if (!help.has(command)) help.set(command, command === 'schema' ? 'usage: cutover schema' : await helpOf(command));
      const text = help.get(command);
      if (text === undefined) {
        // Prose like "cutover sidecar is one process" is not a command line; a line with flags is.
        if (/\s--[a-z]/.test(line)) problems.push(`${file}: "${line}": no command ${JSON.stringify(command)}`);
        continue;
      }
      for (const flag of line.match(/(?<=\s)--[a-z][a-z-]*/g) ?? []) {
        if (!text.includes(flag)) problems.push(`${file}: "${line}": ${command} has no ${flag}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('cutover schema prints the JSON Schema of the config', async () => {
    const out: string[] = [];
    expect(await runCli(['schema'], { out: (s) => void out.push(s), err: (s) => void out.push(s) })).toBe(0);
    expect(JSON.parse(out.join('\n')).title).toBe('cutover configuration');
  });
});
