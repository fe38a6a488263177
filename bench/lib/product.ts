import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** True when BENCH_FROM_SOURCE=1: the benchmarks load cutover's TypeScript sources through tsx. */
export const fromSource = process.env.BENCH_FROM_SOURCE === '1';

/**
 * A module of cutover (a path from the repository root, without extension) as users run it: compiled to
 * dist/ (see buildProduct), or the TypeScript source through tsx with BENCH_FROM_SOURCE=1. tsx's output
 * differs from tsc's: it names every closure it creates, which costs a call per closure made on the request
 * path, so CPU figures of the sources overstate what a deployed sidecar spends.
 */
export async function product<T>(module: string): Promise<T> {
  const file = fromSource ? `../../${module}.ts` : `../../dist/${module}.js`;
  return (await import(new URL(file, import.meta.url).href)) as T;
}

/** Compiles this checkout to dist/ (tsconfig.build.json), unless the run loads the sources. */
export function buildProduct(): void {
  if (fromSource) return;
  const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));
  execFileSync(process.execPath, [tsc, '-p', fileURLToPath(new URL('../../tsconfig.build.json', import.meta.url))], { stdio: 'inherit' });
}
