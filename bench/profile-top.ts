/**
 * Reads V8 CPU profiles (`--cpu-prof`, e.g. the ones `BENCH_PROF=dir npm run bench:proxy` writes) and prints
 * where the time went: self time per function and per module (a package under node_modules, a file of
 * cutover, Node's internals, the garbage collector), as a share of the busy (non-idle) time.
 *
 * `npx tsx bench/profile-top.ts <file.cpuprofile> [more files...]` (several files are summed). Env:
 * PROFILE_TOP (rows per table, default 30), PROFILE_FILTER (only functions whose module contains it).
 * A third table gives inclusive time (the function and everything it called) for the functions of cutover.
 */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a function lives: a package, a file of ours, Node itself, or one of V8's pseudo-frames. */
function moduleOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith('node:')) return url;
  const m = /\/(src|proxy|shadow|reports|bench|examples)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

const top = Number(process.env.PROFILE_TOP ?? 30);
const filter = process.env.PROFILE_FILTER;
const byFunction = new Map<string, number>();
const byModule = new Map<string, number>();
const inclusive = new Map<string, number>();
let busy = 0;
let idle = 0;
for (const file of process.argv.slice(2)) {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  for (let i = 0; i < profile.samples.length; i++) {
    const node = nodes.get(profile.samples[i]!)!;
    const micros = profile.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)' || functionName === '(program)') {
      idle += micros;
      continue;
    }
    busy += micros;
    const mod = moduleOf(url, functionName);
    byModule.set(mod, (byModule.get(mod) ?? 0) + micros);
    if (filter && !mod.includes(filter)) continue;
    const key = `${functionName || '(anonymous)'}  ${mod}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros);
    // Inclusive: every function of ours on the stack, once per sample.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = nodes.get(id)!.callFrame;
      const m = moduleOf(frame.url, frame.functionName);
      if (!/^(src|proxy|shadow|reports)\//.test(m)) continue;
      const k = `${frame.functionName || '(anonymous)'}  ${m}`;
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + micros);
    }
  }
}
const print = (title: string, map: Map<string, number>): void => {
  process.stdout.write(`\n${title}\n`);
  for (const [key, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((micros / busy) * 100).toFixed(1).padStart(6)}%  ${(micros / 1e3).toFixed(0).padStart(8)} ms  ${key}\n`);
  }
};
process.stdout.write(`busy ${(busy / 1e3).toFixed(0)} ms, idle or unattributed ${(idle / 1e3).toFixed(0)} ms\n`);
print('self time by module', byModule);
print('self time by function', byFunction);
print("inclusive time of cutover's functions", inclusive);
