/**
 * Report aggregation over a large parity stream: `npm run bench:report` (`npx tsx bench/report.ts`).
 *
 * Generates BENCH_RECORDS (default 1,000,000) synthetic parity records as a stream (never an array): each is
 * a serialized CloudEvent, as a bus delivers it, that is decoded as the bus adapters do (parseEvent: JSON
 * parse and the CloudEvent check) and mapped to its `data`. Two passes over the same deterministic stream,
 * in one process:
 *   baseline  generate + decode + take `data`, nothing else
 *   report    the same, fed to buildReport (HDR histograms, diffs, timelines, verdicts), then rendered
 *             to JSON and HTML
 * and prints wall and CPU time, records/s, the ratio report over baseline, live memory after a forced GC at
 * each quarter of the stream (flat = bounded memory; run with --expose-gc, as the npm script does) and peak
 * RSS. The goal is 1,000,000 records in at most 5 s, judged on the report pass's CPU time (process.cpuUsage:
 * on a shared machine wall time mostly measures the other processes; both are printed with the load
 * average). The baseline pass is the bound: a report cannot take less than reading its records, so the
 * bench also says whether the baseline alone fits in the goal.
 */
import os from 'node:os';
import { buildReport } from '../reports/report.js';
import { parseEvent } from '../src/events/cloudevent.js';
import { renderHtml } from '../reports/render-html.js';
import { renderJson } from '../reports/render-json.js';
import type { ParityOutcome, ParityRecord } from '../src/parity/types.js';
import { seededRandom } from '../examples/shop/random.js';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const FLOWS = ['inventory.reserve', 'inventory.release', 'pricing.quote', 'catalog.lookup', 'fraud.score', 'logistics.ship', 'support.ticket', 'recommend.list'];
const GOAL_MS = 5_000;
const CHECKPOINT = Math.max(1, Math.floor(RECORDS / 4));


/**
 * Serialized parity CloudEvents over 24 h: 98.9% match, 0.5% mismatch, 0.3% missing bus, 0.1% missing
 * direct, 0.2% bus error (DLQ). Text is assembled from templates rather than JSON.stringify so that making
 * the stream costs little next to what is measured; the `generate` pass measures that cost anyway.
 */
function* serializedEvents(n: number): Generator<string> {
  const random = seededRandom(42);
  const start = Date.parse('2025-03-01T00:00:00Z');
  const step = 86_400_000 / n;
  for (let i = 0; i < n; i++) {
    const flow = FLOWS[i % FLOWS.length]!;
    const u = random();
    const outcome: ParityOutcome = u < 0.989 ? 'match' : u < 0.994 ? 'mismatch' : u < 0.997 ? 'missing_bus' : u < 0.998 ? 'missing_direct' : 'error_bus';
    const at = new Date(start + i * step).toISOString();
    let fields = `"directStatus":200,"directLatencyMs":${(5 + random() * 40).toFixed(3)},"eventBytes":${600 + Math.floor(random() * 2000)}`;
    if (outcome !== 'missing_bus' && outcome !== 'error_bus') {
      fields += `,"busStatus":200,"busLatencyMs":${(20 + random() * 200).toFixed(3)},"busLagMs":${(random() * 15).toFixed(3)}`;
    }
    if (outcome === 'error_bus') fields += ',"dlq":true,"errorCode":"CUTOVER_HANDLER_FAILED"';
    let diffs = '[]';
    if (outcome === 'mismatch') {
      diffs = `[{"path":"/body/price","kind":"changed","direct":10.5,"bus":10.49},{"path":"/body/items/${i % 7}/qty","kind":"changed","direct":1,"bus":2}]`;
      fields += `,"request":{"method":"POST","target":"/stock/reserve?sku=A-${i % 100}","headers":{"content-type":"application/json"},"body":"{\\"sku\\":\\"A-${i % 100}\\",\\"qty\\":1}"}`;
    }
    const data = `{"v":1,"flow":"${flow}","correlationId":"c-${i}","outcome":"${outcome}","at":"${at}","mode":"shadow","diffs":${diffs},"noise":["/headers/date","/body/generatedAt"],${fields}}`;
    yield `{"specversion":"1.0","id":"p-${i}","source":"/agents/comparator","type":"cutover.parity.v1","time":"${at}","datacontenttype":"application/json","data":${data}}`;
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

interface Memory {
  heapAtCheckpoints: number[];
  peakHeap: number;
  peakRss: number;
}

/** The stream as a bus reader would hand it over: parsed events mapped to `data`; samples memory as it goes. */
async function* records(n: number, memory: Memory): AsyncGenerator<ParityRecord> {
  let i = 0;
  for (const text of serializedEvents(n)) {
    yield parseEvent(text).data as ParityRecord;
    if (++i % 10_000 === 0) {
      const m = process.memoryUsage();
      if (m.heapUsed > memory.peakHeap) memory.peakHeap = m.heapUsed;
      if (m.rss > memory.peakRss) memory.peakRss = m.rss;
    }
    if (i % CHECKPOINT === 0) {
      // Live memory (after a full GC; typed arrays of the histograms included) at each quarter: flat means
      // memory does not grow with the stream.
      gc?.();
      const m = process.memoryUsage();
      memory.heapAtCheckpoints.push(m.heapUsed + m.arrayBuffers);
    }
  }
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Heap before the running pass, so a pass can measure what it retains. */
let passHeapBefore = 0;

interface PassResult {
  ms: number;
  cpuMs: number;
}

async function pass(name: string, work: (source: AsyncIterable<ParityRecord>) => Promise<void>): Promise<PassResult> {
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  passHeapBefore = heapBefore;
  const memory: Memory = { heapAtCheckpoints: [], peakHeap: heapBefore, peakRss: process.memoryUsage().rss };
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work(records(RECORDS, memory));
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const cpuMs = (used.user + used.system) / 1000;
  console.log(
    `${name.padEnd(9)} ${secs(ms)} wall, ${secs(cpuMs)} CPU = ${Math.round(RECORDS / (ms / 1000)).toLocaleString('en-US')} records/s; ` +
      `heap ${mb(heapBefore)} → peak ${mb(memory.peakHeap)} (growth ${mb(memory.peakHeap - heapBefore)}); live heap+buffers at 25/50/75/100%: ${memory.heapAtCheckpoints.map(mb).join(' / ')}; peak RSS ${mb(memory.peakRss)}`,
  );
  return { ms, cpuMs };
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${RECORDS.toLocaleString('en-US')} records, ${FLOWS.length} flows, ${os.cpus().length} CPUs, load average ${os.loadavg()[0]!.toFixed(1)}${gc ? '' : ' (run with --expose-gc for steadier heap figures)'}`);
  // Warm both code paths so the JIT does not bill the first pass.
  for (const text of serializedEvents(20_000)) parseEvent(text);
  await buildReport(records(20_000, { heapAtCheckpoints: [], peakHeap: 0, peakRss: 0 }));

  // What making the synthetic stream costs (not part of building a report).
  gc?.();
  const genCpu = process.cpuUsage();
  const genStarted = performance.now();
  let bytes = 0;
  for (const text of serializedEvents(RECORDS)) bytes += text.length;
  const generate: PassResult = { ms: performance.now() - genStarted, cpuMs: (process.cpuUsage(genCpu).user + process.cpuUsage(genCpu).system) / 1000 };
  console.log(`generate  ${secs(generate.ms)} wall, ${secs(generate.cpuMs)} CPU (${mb(bytes)} of CloudEvent JSON, ~${Math.round(bytes / RECORDS)} B each)`);

  const baseline = await pass('baseline', async (source) => {
    let n = 0;
    for await (const r of source) if (r.v === 1) n++;
    if (n !== RECORDS) throw new Error(`baseline saw ${n} records`);
  });
  let summary = '';
  const report = await pass('report', async (source) => {
    const built = await buildReport(source, { flows: FLOWS.map((name) => ({ name, mode: 'shadow', method: name === 'catalog.lookup' ? 'GET' : 'POST' })) });
    // What the finished aggregation holds on to (the stream's garbage collected): should not grow with RECORDS.
    gc?.();
    const retained = gc ? `; retained after GC ${mb(process.memoryUsage().heapUsed - passHeapBefore)}` : '';
    const json = renderJson(built);
    const html = renderHtml(built);
    if (built.input.used !== RECORDS) throw new Error(`report used ${built.input.used} records`);
    summary = `report: ${built.flows.length} flows, verdict ${built.verdict}; JSON ${mb(Buffer.byteLength(json))}, HTML ${mb(Buffer.byteLength(html))}${retained}`;
  });
  console.log(summary);
  console.log(`report over baseline: ${(report.cpuMs / baseline.cpuMs).toFixed(2)}× CPU, ${(report.ms / baseline.ms).toFixed(2)}× wall`);
  const net = report.cpuMs - generate.cpuMs;
  console.log(
    `report net of stream generation (parse + aggregate + render): ${secs(net)} CPU = ${Math.round(RECORDS / (net / 1000)).toLocaleString('en-US')} records/CPU-s; ` +
      `aggregation + render alone ≈ ${secs(report.cpuMs - baseline.cpuMs)} CPU (${secs(report.ms - baseline.ms)} wall)`,
  );
  console.log(`process peak RSS (maxRSS) ${mb(process.resourceUsage().maxRSS * 1024)}`);
  const goal = GOAL_MS * (RECORDS / 1_000_000);
  const verdict = (ms: number): string => (ms <= goal ? 'PASS' : 'MISS');
  console.log(`goal ${RECORDS.toLocaleString('en-US')} records ≤ ${secs(goal)} (CPU, load average ${os.loadavg()[0]!.toFixed(1)}):`);
  console.log(`  report pass          ${secs(report.cpuMs).padStart(8)} CPU  ${verdict(report.cpuMs)}   (${secs(report.ms)} wall)`);
  console.log(`  net of generation    ${secs(net).padStart(8)} CPU  ${verdict(net)}`);
  console.log(`  bound: baseline pass ${secs(baseline.cpuMs).padStart(8)} CPU  ${baseline.cpuMs <= goal ? 'fits in the goal' : 'alone exceeds the goal'} (generate + decode + async iteration, no aggregation)`);
}

await main();
