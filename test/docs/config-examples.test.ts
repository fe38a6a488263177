import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { sidecarConfigSchema } from '../../src/config/schema.js';
import { busConfigSchema } from '../../src/config/bus.js';
import { parseConfigText } from '../../src/config/load.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { codeBlocks, markdownFiles, stubEnv, type CodeBlock } from './markdown.js';

/**
 * Every config example in README.md and docs/*.md must be a config `cutover validate` accepts, so that none
 * can rot. The rules:
 * - a ```yaml block with a top-level `agent:` is a whole config file: it must validate against the full
 *   schema (and against the sidecar's, when it has `upstream:` or `routes:`);
 * - a block made of one-line `bus: {...}` entries validates each line against the bus schema; a block whose
 *   only top-level key is `bus:` validates as one bus section;
 * - a block preceded by `<!-- not-a-config -->` (Kubernetes manifests, Prometheus config...) is skipped;
 * - anything else is a fragment (a few keys with `...`) and is not checked here.
 * `${VAR}`s are filled with stub values.
 */
const NOT_A_CONFIG = '<!-- not-a-config -->';
const busOnly = z.object({ bus: busConfigSchema }).strict();

function yamlBlocks(): CodeBlock[] {
  return markdownFiles()
    .flatMap(codeBlocks)
    .filter((b) => (b.lang === 'yaml' || b.lang === 'yml') && b.marker !== NOT_A_CONFIG);
}

const isWholeConfig = (b: CodeBlock): boolean => /^agent:/m.test(b.text);
const contentLines = (b: CodeBlock): string[] => b.text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
const isBusLines = (b: CodeBlock): boolean => contentLines(b).length > 0 && contentLines(b).every((l) => /^bus:\s*\{.*\}\s*(#.*)?$/.test(l));
const isBusSection = (b: CodeBlock): boolean => !isBusLines(b) && contentLines(b).length > 0 && contentLines(b).every((l) => l.startsWith('bus:') || /^\s/.test(l));

function check<S extends z.ZodTypeAny>(block: CodeBlock, text: string, schema: S): void {
  const where = `${block.file}:${block.line}`;
  expect(() => parseConfigText(text, schema, { env: stubEnv(), source: where }), where).not.toThrow();
}

describe('config examples in README.md and docs/', () => {
  const blocks = yamlBlocks();

  it('finds the examples it checks', () => {
    expect(blocks.filter(isWholeConfig).length).toBeGreaterThanOrEqual(8);
    expect(blocks.filter(isBusLines).length).toBeGreaterThanOrEqual(2);
  });

  for (const block of blocks.filter(isWholeConfig)) {
    it(`${block.file}:${block.line} is a valid config file`, () => {
      check(block, block.text, cutoverConfigSchema);
      if (/^(upstream|routes):/m.test(block.text)) check(block, block.text, sidecarConfigSchema);
    });
  }

  for (const block of blocks.filter(isBusLines)) {
    it(`${block.file}:${block.line}: every bus line is a valid bus section`, () => {
      for (const line of contentLines(block)) check(block, line, busOnly);
    });
  }

  for (const block of blocks.filter((b) => !isWholeConfig(b) && isBusSection(b))) {
    it(`${block.file}:${block.line} is a valid bus section`, () => check(block, block.text, busOnly));
  }
});
