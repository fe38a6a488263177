import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../src/errors.js';

/** A declared error code that nothing raises is a promise in the docs that the code does not keep. */
const root = path.resolve(import.meta.dirname, '..');
const source = ['src', 'proxy', 'shadow', 'reports', 'bin']
  .flatMap((dir) => readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true }).filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => path.join(e.parentPath, e.name)))
  .filter((file) => path.relative(root, file) !== path.join('src', 'errors.ts'))
  .map((file) => readFileSync(file, 'utf8'))
  .join('\n');

describe('error codes', () => {
  it('every declared code is used by the code that raises or maps errors', () => {
    const unused = Object.keys(ErrorCodes).filter((name) => !new RegExp(`ErrorCodes\\.${name}\\b`).test(source));
    expect(Object.keys(ErrorCodes).length).toBeGreaterThan(10);
    expect(unused).toEqual([]);
  });
});
