import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { headings, prose } from './markdown.js';

const FILE = 'docs/troubleshooting.md';
const codes = Object.values(ErrorCodes);

describe('docs/troubleshooting.md', () => {
  const h3 = headings(FILE).filter((h) => h.level === 3).map((h) => h.text);

  it('has a `### CODE` section for every error code in src/errors.ts', () => {
    const missing = codes.filter((code) => !h3.includes(code));
    expect(missing, `add a "### <code>" section for each of these to ${FILE}`).toEqual([]);
  });

  it('names no code that src/errors.ts does not define', () => {
    const unknown = h3.filter((h) => /^CUTOVER_[A-Z0-9_]+$/.test(h) && !(codes as string[]).includes(h));
    expect(unknown).toEqual([]);
  });

  it('says what each code means and how to fix it', () => {
    const text = prose(FILE);
    for (const code of codes) {
      const start = text.indexOf(`### ${code}\n`);
      const next = text.indexOf('\n#', start + 4);
      const section = text.slice(start, next === -1 ? undefined : next);
      expect(section, code).toContain('**Means:**');
      expect(section, code).toContain('**Fix:**');
    }
  });

  it('covers the symptoms operators meet first', () => {
    const symptoms = ['Broker down at start', 'Redis eviction policy refused', 'Kafka session timeout refused by broker', 'Events dropped because the spool is full', '502 or 504 from the sidecar'];
    expect(h3).toEqual(expect.arrayContaining(symptoms));
  });
});
