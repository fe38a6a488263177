import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The repository root and the docs folder, for the doc tests. */
export const ROOT = path.resolve(import.meta.dirname, '../..');
export const DOCS = path.join(ROOT, 'docs');

/** A fenced code block of a Markdown file. */
export interface CodeBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** Info string after the fence (`yaml`, `json`...), lowercased. */
  lang: string;
  /** The block's text, with the fence's indentation removed (blocks inside list items). */
  text: string;
  /** The last non-blank line before the fence when it is an HTML comment (`<!-- not-a-config -->`). */
  marker: string | undefined;
}

export function readDoc(file: string): string {
  return readFileSync(path.join(ROOT, file), 'utf8');
}

/** The Markdown files whose examples the tests check: README.md and every docs/*.md, as repo-relative paths. */
export function markdownFiles(): string[] {
  const docs = readdirSync(DOCS)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

/** Every fenced block (``` or ~~~, indented or not) of `file`. */
export function codeBlocks(file: string): CodeBlock[] {
  const lines = readDoc(file).split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open as unknown as [string, string, string, string];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j]!;
      if (line.trimStart().startsWith(fence) && line.trim().replace(/[`~]/g, '') === '') break;
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    const previous = k >= 0 ? lines[k]!.trim() : '';
    blocks.push({ file, line: i + 1, lang: lang.toLowerCase(), text: body.join('\n'), marker: /^<!--.*-->$/.test(previous) ? previous : undefined });
    i = j;
  }
  return blocks;
}

/** Text outside fenced blocks (so headings and links inside code are not taken for real ones). */
export function prose(file: string): string {
  const lines = readDoc(file).split('\n');
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of lines) {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && line.trim().startsWith(fence)) fence = undefined;
      continue;
    }
    if (m) {
      fence = m[1];
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

/** Headings of a Markdown file outside code blocks: level and text. */
export function headings(file: string): Array<{ level: number; text: string }> {
  return prose(file)
    .split('\n')
    .map((l) => /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ level: m[1]!.length, text: m[2]! }));
}

/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to dashes. */
export function slug(heading: string): string {
  return heading
    .replace(/`/g, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a Markdown file, with GitHub's `-1`, `-2` suffixes for repeated headings. */
export function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const h of headings(file)) {
    const base = slug(h.text);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Inline links `[text](target)` in the prose of `file` (targets without a scheme are relative). */
export function links(file: string): string[] {
  return [...prose(file).matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

/**
 * Names like `cutover_sidecar_requests_total` in a text, without the histogram series suffixes. Family
 * prefixes written with a wildcard (`cutover_sidecar_*`) are not names.
 */
export function metricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/\bcutover_[a-z0-9_]*[a-z0-9](?![a-z0-9_]*\*)/g)) names.add(m[0].replace(/_(bucket|sum|count)$/, ''));
  return names;
}

/**
 * An environment in which every `${VAR}` of a doc example is set, with a value that fits how docs use it:
 * tokens long enough for `admin.token`, keys of the right size for `encryption.keyEnv`.
 */
export function stubEnv(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  return new Proxy({ ...overrides } as NodeJS.ProcessEnv, {
    get(target, name) {
      if (typeof name !== 'string') return undefined;
      if (name in target) return target[name];
      if (/KEY$/.test(name)) return '0'.repeat(64);
      if (/TOKEN$/.test(name)) return 'stub-token-0123456789abcdef';
      return `stub-${name.toLowerCase().replace(/_/g, '-')}`;
    },
  });
}
