import { describe, expect, it } from 'vitest';
import { compileRules, diffResults, type ComparableResult } from '../../shadow/diff.js';
import { RPC_GENERATED_PATHS } from '../../shadow/noise.js';
import { foldEventStream } from '../../shadow/stream.js';

const sse = (values: unknown[], tail = ''): string => values.map((v) => `data: ${JSON.stringify(v)}\n\n`).join('') + tail;
const rpc = (result: unknown, id: unknown = 1): unknown => ({ jsonrpc: '2.0', id, result });

/** An A2A 1.0 stream: the task, the answer in chunks of `size`, the final status. */
function a2aStream(answer: string, size: number, ids = { task: 't-1', artifact: 'a-1' }, final = true): string {
  const events: unknown[] = [rpc({ task: { id: ids.task, contextId: 'c', status: { state: 'TASK_STATE_WORKING' }, artifacts: [] } })];
  for (let i = 0; i < answer.length; i += size) {
    events.push(rpc({ artifactUpdate: { taskId: ids.task, artifact: { artifactId: ids.artifact, parts: [{ text: answer.slice(i, i + size) }] }, append: i > 0 } }));
  }
  if (final) events.push(rpc({ statusUpdate: { taskId: ids.task, status: { state: 'TASK_STATE_COMPLETED', timestamp: `${size}` }, final: true } }));
  return sse(events);
}

const result = (body: string): ComparableResult => ({ status: 200, body, bodyEncoding: 'utf8', contentType: 'text/event-stream' });
const rpcRules = compileRules({ ignore: [...RPC_GENERATED_PATHS] });

describe('foldEventStream', () => {
  it('folds an A2A stream into the final task: chunks joined, status applied, complete', () => {
    expect(foldEventStream(a2aStream('HELLO WORLD', 3))).toEqual({
      jsonrpc: '2.0',
      id: 1,
      result: { task: { id: 't-1', contextId: 'c', status: { state: 'TASK_STATE_COMPLETED', timestamp: '3' }, artifacts: [{ artifactId: 'a-1', parts: [{ text: 'HELLO WORLD' }] }] }, messages: [] },
      stream: { complete: true },
    });
  });

  it('folds A2A 0.3 (kind-tagged) events the same way', () => {
    const text = sse([
      rpc({ kind: 'status-update', taskId: 't', contextId: 'c', status: { state: 'working' }, final: false }),
      rpc({ kind: 'artifact-update', taskId: 't', artifact: { artifactId: 'a', parts: [{ kind: 'text', text: 'ab' }] } }),
      rpc({ kind: 'artifact-update', taskId: 't', artifact: { artifactId: 'a', parts: [{ kind: 'text', text: 'cd' }] }, append: true }),
      rpc({ kind: 'status-update', taskId: 't', status: { state: 'completed' }, final: true }),
    ]);
    expect(foldEventStream(text)).toMatchObject({ result: { task: { status: { state: 'completed' }, artifacts: [{ parts: [{ kind: 'text', text: 'abcd' }] }] } }, stream: { complete: true } });
  });

  it('a stream that ends without its final status, or mid-event, is incomplete', () => {
    expect(foldEventStream(a2aStream('HELLO', 2, undefined, false))).toMatchObject({ stream: { complete: false } });
    expect(foldEventStream(a2aStream('HELLO', 2) + 'data: {"jsonrpc"')).toMatchObject({ stream: { complete: false } });
  });

  it('an MCP stream is the response it carries, notifications aside', () => {
    const text = sse([{ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 0.5 } }, { jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text: '12' }] } }]);
    expect(foldEventStream(text)).toEqual({ jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text: '12' }] }, stream: { complete: true } });
  });

  it('any other stream is its events in order', () => {
    expect(foldEventStream('data: {"delta":"a"}\n\ndata: [DONE]\n\n')).toEqual({ events: [{ delta: 'a' }, '[DONE]'], stream: { complete: true } });
  });
});

describe('comparing streamed answers', () => {
  it('chunking, generated ids and timestamps do not count; the final artifact does, by field', () => {
    const direct = result(a2aStream('HELLO WORLD', 3, { task: 't-1', artifact: 'a-1' }));
    expect(diffResults(direct, result(a2aStream('HELLO WORLD', 5, { task: 't-2', artifact: 'a-2' })), rpcRules)).toEqual([]);
    expect(diffResults(direct, result(a2aStream('HELLO WORLD!', 4)), rpcRules)).toEqual([
      { path: '/body/result/task/artifacts/0/parts/0/text', kind: 'changed', direct: 'HELLO WORLD', bus: 'HELLO WORLD!' },
    ]);
  });

  it('a stream cut short differs from a finished one, at /body/stream/complete and what it lacks', () => {
    const diffs = diffResults(result(a2aStream('HELLO', 2)), result(a2aStream('HELLO', 2, undefined, false)), rpcRules);
    expect(diffs.map((d) => d.path)).toEqual(['/body/result/task/status/state', '/body/stream/complete']);
  });

  it('rules address parts of a stream like any body', () => {
    const rules = compileRules({ ignore: [...RPC_GENERATED_PATHS, '/body/result/task/artifacts'] });
    expect(diffResults(result(a2aStream('HELLO', 2)), result(a2aStream('BYE', 2)), rules)).toEqual([]);
  });
});
