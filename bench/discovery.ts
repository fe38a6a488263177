/**
 * Discovery benchmark: `npm run bench:discovery`. What recording one sampled call costs the sidecar's event
 * loop (`observe:`): path template, JSON parse of both bodies, shapes and values, repeat digests. The
 * baseline, measured in the same run, is parsing the two bodies alone (the least any recording of payload
 * shapes costs); the ratio is what to read. Env: BENCH_CALLS (default 100,000).
 */
import { DiscoveryRecorder } from '../src/discovery/recorder.js';

const calls = Number(process.env.BENCH_CALLS ?? 100_000);
const request = Buffer.from(JSON.stringify({ sku: 'SKU-RED-MUG', qty: 1, customerId: 'cust-42', shipTo: { country: 'NL', postcode: '1011' } }));
const response = Buffer.from(JSON.stringify({ reservationId: 'r-1', sku: 'SKU-RED-MUG', qty: 1, status: 'held', remaining: 999 }));
const rpcRequest = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { contextId: 'ctx-1', taskId: 't-1' } }));
const rpcResponse = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { state: 'completed' } }));

function time(fn: (i: number) => void): number {
  for (let i = 0; i < calls / 10; i++) fn(i);
  const started = performance.now();
  for (let i = 0; i < calls; i++) fn(i);
  return ((performance.now() - started) * 1_000) / calls;
}

let sink = 0;
const baseline = time(() => {
  sink += Object.keys(JSON.parse(request.toString('utf8')) as object).length + Object.keys(JSON.parse(response.toString('utf8')) as object).length;
});
const rest = new DiscoveryRecorder({ agent: 'inventory', maxTemplates: 200, maxSamples: 3, foldAfter: 8 });
const restMicros = time((i) => rest.record({ method: 'POST', path: `/orders/${i % 1_000}/reserve`, status: 201, latencyMs: 1, request, response }));
const rpc = new DiscoveryRecorder({ agent: 'planner', maxTemplates: 200, maxSamples: 3, foldAfter: 8 });
const rpcMicros = time(() => rpc.record({ method: 'POST', path: '/a2a', status: 200, latencyMs: 1, request: rpcRequest, response: rpcResponse }));

const line = (name: string, micros: number): string => `${name.padEnd(38)}${micros.toFixed(2).padStart(8)} µs  ${(micros / baseline).toFixed(2).padStart(6)}x`;
console.log(`cutover bench/discovery: ${calls} calls each, one process; the ratio is against parsing both bodies alone`);
console.log(line('parse both bodies (baseline)', baseline));
console.log(line('record a REST call (/orders/:orderId)', restMicros));
console.log(line('record a JSON-RPC call (tasks/get)', rpcMicros));
console.log(`candidates kept: ${rest.current().candidates.length} REST, ${rpc.current().candidates.length} JSON-RPC`);
