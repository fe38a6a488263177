import { readFileSync } from 'node:fs';
import path from 'node:path';
import ajvModule from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, configReferenceMarkdown } from '../../src/config/reference.js';

const docs = path.resolve(import.meta.dirname, '../../docs');

describe('generated configuration reference', () => {
  it('docs/configuration.md and docs/config-schema.json match the zod schemas (run npm run docs:config)', () => {
    expect(readFileSync(path.join(docs, 'configuration.md'), 'utf8')).toBe(configReferenceMarkdown());
    expect(JSON.parse(readFileSync(path.join(docs, 'config-schema.json'), 'utf8'))).toEqual(configJsonSchema());
  });

  it('the JSON Schema accepts a valid config and rejects an unknown key, like cutover validate', () => {
    // CommonJS under NodeNext: the default import is module.exports, whose `default` is the class.
    const ajv = new ajvModule.default({ strict: false, allErrors: true });
    const validate = ajv.compile(configJsonSchema());
    const config = parse('agent: inventory\nadmin: { auth: false }\nflows:\n  - { name: a.b, match: { method: POST, path: /a }, topic: events.a.b }\n');
    expect(validate(config)).toBe(true);
    expect(validate({ ...config, nope: 1 })).toBe(false);
  });
});
