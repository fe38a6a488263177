import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { anchors, DOCS, links, markdownFiles, ROOT } from './markdown.js';

/** Every file under docs/, relative to docs/ (folders end with /). */
function docFiles(dir = DOCS, rel = ''): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? [`${rel}${name}/`, ...docFiles(full, `${rel}${name}/`)] : [`${rel}${name}`];
  });
}

describe('docs index and links', () => {
  it('docs/README.md links every file under docs/', () => {
    const listed = new Set(links('docs/README.md').map((l) => l.split('#')[0]));
    const missing = docFiles().filter((f) => f !== 'README.md' && !listed.has(f));
    expect(missing, 'add these to docs/README.md').toEqual([]);
  });

  it('every relative link in README.md and docs/*.md points to a file that exists, and to a heading that exists', () => {
    const broken: string[] = [];
    for (const file of markdownFiles()) {
      for (const link of links(file)) {
        if (/^[a-z]+:/i.test(link)) continue; // http:, https:, mailto:
        const [target, anchor] = link.split('#') as [string, string | undefined];
        const resolved = target === '' ? path.join(ROOT, file) : path.resolve(path.dirname(path.join(ROOT, file)), target);
        if (!existsSync(resolved)) {
          broken.push(`${file}: ${link} (no such file)`);
          continue;
        }
        if (anchor && resolved.endsWith('.md') && !anchors(path.relative(ROOT, resolved)).has(anchor)) broken.push(`${file}: ${link} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });
});
