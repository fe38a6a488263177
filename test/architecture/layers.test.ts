import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The source tree's layers, lowest first. A file may import from its own layer and the ones below it;
 * `shadow/` and `reports/` are peers that build on `src/` only; `bin/` (the command line) wires everything
 * and nothing imports it.
 */
const root = path.resolve(import.meta.dirname, '../..');
const LAYERS: ReadonlyArray<{ name: string; dir: string; may: readonly string[] }> = [
  { name: 'src', dir: 'src', may: ['src'] },
  { name: 'shadow', dir: 'shadow', may: ['src', 'shadow'] },
  { name: 'reports', dir: 'reports', may: ['src', 'reports'] },
  { name: 'proxy', dir: 'proxy', may: ['src', 'shadow', 'reports', 'proxy'] },
  { name: 'bin', dir: 'bin', may: ['src', 'shadow', 'reports', 'proxy', 'bin'] },
];

interface Import {
  from: string;
  to: string;
  line: number;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ts$/.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}

// Static imports and re-exports (also spread over several lines) and dynamic import() of a relative path.
const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'";]*?\sfrom\s*['"](\.{1,2}\/[^'"]+)['"]|(?:^|[\s;])import\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

export function importsOf(file: string): Import[] {
  const text = readFileSync(path.join(root, file), 'utf8');
  const found: Import[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    const target = path.relative(root, path.resolve(path.dirname(path.join(root, file)), spec)).replace(/\.js$/, '.ts');
    const line = text.slice(0, m.index! + m[0].length).split('\n').length;
    found.push({ from: file, to: target, line });
  }
  return found;
}

function layerOf(file: string): string | undefined {
  return LAYERS.find((l) => file.startsWith(`${l.dir}/`))?.name;
}

const files = LAYERS.flatMap((l) => sourceFiles(l.dir));
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe('layers', () => {
  it('finds the source tree and its imports', () => {
    expect(files.length).toBeGreaterThan(50);
    expect([...graph.values()].flat().length).toBeGreaterThan(200);
  });

  it('imports only from the same layer or a lower one', () => {
    const upward: string[] = [];
    for (const [file, imports] of graph) {
      const layer = LAYERS.find((l) => l.name === layerOf(file))!;
      for (const i of imports) {
        const target = layerOf(i.to);
        if (target !== undefined && !layer.may.includes(target)) upward.push(`${file}:${i.line} imports ${i.to} (${layer.name} may use ${layer.may.join(', ')})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('has no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: Import[] = [];
    const visit = (file: string): void => {
      state.set(file, 'open');
      for (const i of graph.get(file) ?? []) {
        if (!graph.has(i.to)) continue;
        if (state.get(i.to) === 'open') {
          const start = stack.findIndex((s) => s.from === i.to);
          cycles.push([...stack.slice(start === -1 ? stack.length : start), i].map((s) => `${s.from}:${s.line}`).join(' → ') + ` → ${i.to}`);
        } else if (!state.has(i.to)) {
          stack.push(i);
          visit(i.to);
          stack.pop();
        }
      }
      state.set(file, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
