import type { ClientRequest } from 'node:http';

/**
 * Headers that frame or route the request: repeated, the upstream could read a different request (or
 * host) than the sidecar did, so they keep the single value Node chose.
 */
const SINGLE = new Set(['host', 'content-length', 'transfer-encoding']);

/**
 * Gives the upstream request every repeated header line the caller sent, each value as sent. http-proxy
 * builds the upstream request from `req.headers`, where Node has already joined repeated headers with
 * `, ` (`; ` for Cookie) or kept only the first (Authorization, User-Agent...); `rawHeaders` still has
 * every line. Only repeated names are touched: every other header stays as http-proxy set it. Node's
 * client still sends repeated Cookie values as one line joined with `; `, as RFC 6265 asks of clients.
 *
 * Call it from http-proxy's `proxyReq` event, which fires before the request's headers are written.
 */
export function restoreRepeatedHeaders(proxyReq: ClientRequest, rawHeaders: readonly string[]): void {
  if (proxyReq.headersSent || !hasRepeats(rawHeaders)) return;
  const lines = new Map<string, { name: string; values: string[] }>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    const entry = lines.get(lower);
    if (entry) entry.values.push(rawHeaders[i + 1]!);
    else lines.set(lower, { name, values: [rawHeaders[i + 1]!] });
  }
  for (const [lower, { name, values }] of lines) {
    if (values.length < 2 || SINGLE.has(lower)) continue;
    // http-proxy may have removed a header on purpose: restore only what it forwards.
    if (proxyReq.getHeader(lower) === undefined) continue;
    proxyReq.setHeader(name, values);
  }
}

/** Whether any header name occurs twice: most requests have none, and then nothing is allocated per header. */
function hasRepeats(rawHeaders: readonly string[]): boolean {
  const names = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (names.has(lower)) return true;
    names.add(lower);
  }
  return false;
}
