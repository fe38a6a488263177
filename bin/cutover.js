#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (npm ci runs it through `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/bin/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('cutover: dist/ is missing; run `npm run build` (npm ci runs it for you)\n');
  process.exit(2);
}
const { runCli } = await import(main.href);
process.exitCode = await runCli(process.argv.slice(2));
