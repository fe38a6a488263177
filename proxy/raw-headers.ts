import type { IncomingMessage } from 'node:http';

/**
 * Headers that frame or route the request: repeated, the upstream could read a different request (or
 * host) than the sidecar did, so they keep the single value Node chose.
 */
const SINGLE = new Set(['host', 'content-length', 'transfer-encoding']);

/**
 * Makes http-proxy forward every repeated request header line the caller sent, each value as sent. Node
 * has already joined repeated headers in `req.headers` with `, ` or kept only the first (Authorization,
 * User-Agent...), and http-proxy builds the upstream request from a copy of `req.headers`; `rawHeaders`
 * still has every line. Node's client sends an array value as one line per value (Cookie excepted: one
 * line joined with `; `, as RFC 6265 asks of clients).
 *
 * Call it from http-proxy's `start` event: http-proxy copies `req.headers` synchronously right after it,
 * before it creates the upstream request. The arrays are put back to Node's values in a microtask, once
 * that copy is made, so everything else reading `req.headers` (call events, keys, noise calls) sees what
 * Node gave. Not the `proxyReq` event: it fires once the upstream socket is assigned, and by then a body
 * already flowing (a captured flow) may have written the headers.
 */
export function forwardRepeatedHeaders(req: IncomingMessage): void {
  // Every request passes here: when Node kept one entry per raw line, no name repeats, and nothing is
  // allocated to find that out.
  let distinct = 0;
  for (const _ in req.headers) distinct++;
  if (distinct * 2 === req.rawHeaders.length) return;
  const repeated = repeatedHeaders(req.rawHeaders);
  if (!repeated) return;
  const headers = req.headers as Record<string, string | string[] | undefined>;
  const merged = new Map<string, string | string[] | undefined>();
  for (const [lower, values] of repeated) {
    if (SINGLE.has(lower)) continue;
    merged.set(lower, headers[lower]);
    headers[lower] = values;
  }
  if (merged.size === 0) return;
  queueMicrotask(() => {
    for (const [lower, value] of merged) headers[lower] = value;
  });
}

/** The values of every header name that occurs more than once, by lowercase name; undefined when none does. */
function repeatedHeaders(rawHeaders: readonly string[]): Map<string, string[]> | undefined {
  const names = new Set<string>();
  let repeats: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (names.has(lower)) (repeats ??= new Set()).add(lower);
    names.add(lower);
  }
  if (!repeats) return undefined;
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (!repeats.has(lower)) continue;
    const list = values.get(lower);
    if (list) list.push(rawHeaders[i + 1]!);
    else values.set(lower, [rawHeaders[i + 1]!]);
  }
  return values;
}
