/**
 * What the outbox's journal (`spool.durability: interval`) costs per shadowed call, and where:
 * `npm run bench:journal` (no broker: the journal alone, no HTTP, no bus).
 *
 * Each variant runs in a fresh child process at a fixed rate of calls (default 1,000/s): every call makes the
 * call event and the direct observation as the sidecar builds them, the journal takes both, and they are
 * settled 2 ms later (a bus that acknowledges quickly). Variants:
 *   none         the events are made and settled, no journal (the baseline)
 *   serialize    plus the two journal lines serialized, nothing else
 *   no I/O       the journal on a file system whose every call succeeds at once (its bookkeeping, timers
 *                and serialization, no system call)
 *   disk         the journal on a real directory (BENCH_DIR or the OS temp dir), as shipped
 * and prints the child's CPU (user + system, every thread: libuv's pool and V8's helpers included) per call,
 * the share of the machine that was busy meanwhile (from /proc/stat, Linux only), and each variant against
 * `none` as µs of CPU per call more. Rounds are interleaved, medians reported.
 *
 * Env: BENCH_RATE (calls/s, 1000), BENCH_SECONDS (per variant and round, 5), BENCH_ROUNDS (3),
 * BENCH_COMMIT (the journal's commit interval in ms, 10: the default), BENCH_DIR.
 */
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCallMessage, buildObservationMessage } from '../proxy/call-event.js';
import { Journal } from '../proxy/journal.js';
import { DiskBackoff, nodeSpoolFs, type SpoolFile, type SpoolFs } from '../proxy/spool-fs.js';
import type { SpoolRecord } from '../proxy/spool-types.js';
import { silentLogger } from '../src/logger.js';

const VARIANTS = ['none', 'serialize', 'no I/O', 'disk'] as const;
type Variant = (typeof VARIANTS)[number];
const RATE = Number(process.env.BENCH_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const COMMIT = Number(process.env.BENCH_COMMIT ?? 10);
const BODY = JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: 'cust-42', note: 'leave at the back door' });
const FLOW = { name: 'inventory.reserve', schemaVersion: '1', mode: 'shadow' as const };
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

interface Result {
  variant: Variant;
  calls: number;
  cpuMicros: number;
  busy: number | undefined;
}

/** Busy and total jiffies of the whole machine, or undefined off Linux. */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - fields[3]! - fields[4]!, total };
  } catch {
    return undefined;
  }
}

/** A file system on which every call succeeds at once and nothing is kept. */
function nullFs(): SpoolFs {
  const file: SpoolFile = {
    write: async (_buffer, _offset, length) => ({ bytesWritten: length }),
    datasync: async () => undefined,
    truncate: async () => undefined,
    sync: async () => undefined,
    close: async () => undefined,
  };
  return { open: async () => file, mkdir: async () => undefined, readdir: async () => [], readFile: async () => Buffer.alloc(0), writeFile: async () => undefined, rename: async () => undefined, rm: async () => undefined };
}

function callRecords(seq: number): [SpoolRecord, SpoolRecord] {
  const id = randomUUID();
  const call = buildCallMessage({ agent: 'inventory', flow: FLOW, topic: 'events.inventory.reserve', id, traceparent: TRACEPARENT, partitionKey: 'SKU-RED-MUG', data: { body: JSON.parse(BODY), params: {}, query: {} }, method: 'POST', target: '/reservations', headers: { 'content-type': 'application/json' } });
  const observation = buildObservationMessage({ agent: 'inventory', flow: FLOW, correlationId: id, traceparent: TRACEPARENT, data: { status: 201, headers: { 'content-type': 'application/json; charset=utf-8' }, latencyMs: 0.8, body: { reservationId: randomUUID(), sku: 'SKU-RED-MUG', qty: 1, remaining: 999 }, request: { method: 'POST', target: '/reservations', headers: { 'content-type': 'application/json' }, body: BODY } } });
  return [
    { seq, topic: 'events.inventory.reserve', message: call },
    { seq: seq + 1, topic: 'cutover.observations.inventory.reserve', message: observation },
  ];
}

async function runVariant(variant: Variant): Promise<Result> {
  const dir = mkdtempSync(path.join(process.env.BENCH_DIR ?? tmpdir(), 'cutover-bench-journal-'));
  const journal = variant === 'disk' || variant === 'no I/O' ? new Journal({ dir, fs: variant === 'disk' ? nodeSpoolFs : nullFs(), commitInterval: COMMIT, segmentBytes: 4 * 1024 * 1024, backoff: new DiskBackoff(250, 5_000), logger: silentLogger() }) : undefined;
  await journal?.recover();
  let seq = 0;
  let calls = 0;
  let sink = 0;
  const cpu0 = process.cpuUsage();
  const ticks0 = machineTicks();
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.floor(((performance.now() - start) / 1000) * RATE) - calls;
      const made: SpoolRecord[] = [];
      for (let i = 0; i < due; i++, calls++, seq += 2) {
        for (const record of callRecords(seq)) {
          if (journal) journal.add(record);
          else if (variant === 'serialize') sink += JSON.stringify({ s: record.seq, t: record.topic, m: record.message }).length;
          made.push(record);
        }
      }
      setTimeout(() => {
        if (journal) for (const record of made) journal.settle(record);
      }, 2);
      if (performance.now() - start >= SECONDS * 1000) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  const cpu = process.cpuUsage(cpu0);
  const ticks1 = machineTicks();
  await journal?.close();
  rmSync(dir, { recursive: true, force: true });
  if (sink < 0) throw new Error('unreachable');
  const busy = ticks0 && ticks1 ? (ticks1.busy - ticks0.busy) / (ticks1.total - ticks0.total) : undefined;
  return { variant, calls, cpuMicros: cpu.user + cpu.system, busy };
}

function inChild(variant: Variant): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['child', variant], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m) => resolve(m as Result));
    child.once('error', reject);
    // Once the result came, a later rejection is a no-op; an exit without one is a failure whatever its code.
    child.once('exit', (code) => reject(new Error(`${variant}: the child exited (code ${code}) without a result`)));
  });
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

async function main(): Promise<void> {
  if (process.argv[2] === 'child') {
    const result = await runVariant(process.argv[3] as Variant);
    process.send!(result, () => process.exit(0));
    return;
  }
  console.log(`cutover bench/journal: ${ROUNDS} rounds of ${SECONDS}s per variant at ${RATE} calls/s (two events per call, settled 2 ms later), commit interval ${COMMIT} ms, medians`);
  const perCall: Record<string, number[]> = {};
  const busy: Record<string, number[]> = {};
  for (let round = 1; round <= ROUNDS; round++) {
    for (const variant of round % 2 === 1 ? VARIANTS : [...VARIANTS].reverse()) {
      const r = await inChild(variant);
      const us = r.cpuMicros / r.calls;
      (perCall[variant] ??= []).push(us);
      if (r.busy !== undefined) (busy[variant] ??= []).push(r.busy);
      console.log(`  round ${round}: ${variant}: ${us.toFixed(1)} µs of CPU per call${r.busy === undefined ? '' : `, machine ${(r.busy * 100).toFixed(0)}% busy`}`);
    }
  }
  const none = median(perCall.none!);
  console.log('\nvariant     CPU µs/call  over none  machine busy');
  for (const variant of VARIANTS) {
    const us = median(perCall[variant]!);
    const b = busy[variant] ? `${(median(busy[variant]!) * 100).toFixed(0)}%` : '-';
    console.log(`${variant.padEnd(11)} ${us.toFixed(1).padStart(11)}  ${variant === 'none' ? '-'.padStart(9) : `+${(us - none).toFixed(1)}`.padStart(9)}  ${b.padStart(12)}`);
  }
}

await main();
