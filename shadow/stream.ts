import { parseSse } from '../src/events/sse.js';

/**
 * What a streamed answer means, for comparison. Two runs of one streaming call rarely chunk alike (an
 * artifact in 3 pieces here, 5 there) nor take the same time, and neither is a difference anyone cares
 * about; what they produced is. A stream is therefore compared as one JSON document:
 *
 * - A2A streams (`SendStreamingMessage`, `message/stream`, `SubscribeToTask`): the task folded from its
 *   events, `{ jsonrpc, id, result: { task, messages }, error?, stream: { complete } }`: the last task
 *   snapshot, with each status update applied and artifact chunks joined (`append` concatenates text
 *   parts), and the messages in order. Rules address it like a unary A2A answer
 *   (`/body/result/task/artifacts/0/parts/0/text`, `/body/result/task/status/state`).
 * - Other JSON-RPC streams (MCP streamable HTTP): the response the stream carried (its last `result` or
 *   `error`), without the notifications before it (progress, logs: timing, not results), plus `stream`.
 * - Any other stream: `{ events: [data of each event, parsed when JSON], stream }`, compared in order.
 *
 * `stream.complete` is false when the stream ended early: mid-event, or (A2A) without a final status, (JSON-RPC)
 * without a response. A stream cut short is thus a result of its own, which differs from a finished one.
 */
export function foldEventStream(text: string): unknown {
  const { events, complete: wellFormed } = parseSse(text);
  const values = events.map((e) => parseData(e.data));
  if (values.length > 0 && values.every(isJsonRpcMessage)) {
    const responses = values.filter((v) => 'result' in v || 'error' in v);
    if (responses.some((r) => a2aKind(r.result) !== undefined)) return foldA2a(responses, wellFormed);
    const last = responses.at(-1);
    return { ...(last ?? {}), stream: { complete: wellFormed && last !== undefined } };
  }
  return { events: values, stream: { complete: wellFormed } };
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return data;
  }
}

type Obj = Record<string, unknown>;
type JsonRpcMessage = Obj & { jsonrpc: '2.0'; result?: unknown; error?: unknown; id?: unknown };

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isJsonRpcMessage(v: unknown): v is JsonRpcMessage {
  return isObject(v) && v.jsonrpc === '2.0' && ('result' in v || 'error' in v || typeof v.method === 'string');
}

type A2aKind = 'task' | 'message' | 'statusUpdate' | 'artifactUpdate';
const KIND_03: Readonly<Record<string, A2aKind>> = { task: 'task', message: 'message', 'status-update': 'statusUpdate', 'artifact-update': 'artifactUpdate' };

/** The kind of an A2A stream result and its payload: 1.0 wraps it (`{ statusUpdate: {...} }`), 0.3 tags it (`kind`). */
function a2aKind(result: unknown): { kind: A2aKind; value: Obj } | undefined {
  if (!isObject(result)) return undefined;
  if (typeof result.kind === 'string' && KIND_03[result.kind]) {
    const { kind, ...value } = result;
    return { kind: KIND_03[kind as string]!, value };
  }
  for (const kind of ['task', 'message', 'statusUpdate', 'artifactUpdate'] as const) if (isObject(result[kind])) return { kind, value: result[kind] };
  return undefined;
}

/** Task states after which nothing more comes (A2A 0.3 spelling and 1.0 enum names). */
const FINAL_STATES = /^(TASK_STATE_)?(completed|failed|canceled|cancelled|rejected|input[-_]required|auth[-_]required)$/i;

function foldA2a(responses: JsonRpcMessage[], wellFormed: boolean): unknown {
  let task: Obj | undefined;
  const messages: unknown[] = [];
  let error: unknown;
  let final = false;
  const taskOf = (u: Obj): Obj => (task ??= { id: u.taskId, contextId: u.contextId, artifacts: [] });
  for (const r of responses) {
    if ('error' in r) {
      error = r.error;
      final = true;
      continue;
    }
    const a = a2aKind(r.result);
    if (!a) continue;
    const { kind, value } = a;
    if (kind === 'task') {
      task = { ...value, artifacts: Array.isArray(value.artifacts) ? value.artifacts.map((x) => (isObject(x) ? copyArtifact(x) : x)) : [] };
      if (isObject(value.status) && typeof value.status.state === 'string' && FINAL_STATES.test(value.status.state)) final = true;
    } else if (kind === 'message') {
      messages.push(value);
      // A message answer ends an A2A stream; a message inside a status update does not.
      final = true;
    } else if (kind === 'statusUpdate') {
      taskOf(value).status = value.status;
      if (value.final === true || (isObject(value.status) && typeof value.status.state === 'string' && FINAL_STATES.test(value.status.state))) final = true;
    } else if (isObject(value.artifact)) {
      mergeArtifact(taskOf(value), value.artifact, value.append === true);
    }
  }
  const last = responses.at(-1)!;
  return {
    jsonrpc: '2.0',
    id: last.id ?? null,
    result: { ...(task ? { task } : {}), messages },
    ...(error !== undefined ? { error } : {}),
    stream: { complete: wellFormed && final },
  };
}

function copyArtifact(a: Obj): Obj {
  return { ...a, parts: Array.isArray(a.parts) ? a.parts.map((p) => (isObject(p) ? { ...p } : p)) : [] };
}

/** Applies an artifact update: a new artifact, a replacement, or (`append`) its parts joined to the last ones. */
function mergeArtifact(task: Obj, artifact: Obj, append: boolean): void {
  const artifacts = (Array.isArray(task.artifacts) ? task.artifacts : (task.artifacts = [])) as Obj[];
  const at = artifacts.findIndex((a) => a.artifactId === artifact.artifactId);
  if (at === -1 || !append) {
    const copy = copyArtifact(artifact);
    if (at === -1) artifacts.push(copy);
    else artifacts[at] = copy;
    return;
  }
  const parts = artifacts[at]!.parts as unknown[];
  for (const part of Array.isArray(artifact.parts) ? artifact.parts : []) {
    const lastPart = parts.at(-1);
    // Text split across chunks is one text: chunk boundaries are not part of the answer.
    if (isObject(lastPart) && isObject(part) && typeof lastPart.text === 'string' && typeof part.text === 'string' && Object.keys(part).every((k) => k === 'text' || k === 'kind')) {
      lastPart.text += part.text;
    } else parts.push(isObject(part) ? { ...part } : part);
  }
}
