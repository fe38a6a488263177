import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Placeholder for masked query values: the name stays visible, the value never reaches the bus. */
export const REDACTED = '[REDACTED]';

/** Which headers may be published: an allow-list (or all) minus a deny-list that always wins. */
export interface HeaderPolicy {
  allowAll: boolean;
  allow: ReadonlySet<string>;
  deny: ReadonlySet<string>;
}

export function headerPolicy(allow: readonly string[], deny: readonly string[]): HeaderPolicy {
  return { allowAll: allow.includes('*'), allow: new Set(allow.map((h) => h.toLowerCase())), deny: new Set(deny.map((h) => h.toLowerCase())) };
}

/**
 * The publishable subset of `headers`, names lowercased, repeated values joined with `, `. Denied
 * headers are dropped even when allow-listed, so a misconfigured allow-list cannot leak credentials.
 */
export function pickHeaders(headers: IncomingHttpHeaders | OutgoingHttpHeaders, policy: HeaderPolicy): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (policy.deny.has(lower)) continue;
    if (!policy.allowAll && !policy.allow.has(lower)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    out[lower] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

/** The first value of a header as a string (repeated headers: the first one), or undefined. */
export function headerValue(value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : String(value);
}

/** Masks the values of `names` in a query string (without `?`); returns the input when nothing matches. */
export function redactSearch(search: string, names: ReadonlySet<string>): string {
  if (!search || names.size === 0) return search;
  let changed = false;
  const parts = search.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    let name = rawName;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
    } catch {
      // keep the raw name: a malformed escape cannot name a secret parameter we know
    }
    if (!names.has(name) || eq === -1) return pair;
    changed = true;
    return `${rawName}=${encodeURIComponent(REDACTED)}`;
  });
  return changed ? parts.join('&') : search;
}

/** Masks the values of `names` in a parsed query (in place) and returns it. */
export function redactQuery(query: Record<string, string | string[]>, names: ReadonlySet<string>): Record<string, string | string[]> {
  for (const name of names) {
    const value = query[name];
    if (value === undefined) continue;
    query[name] = Array.isArray(value) ? value.map(() => REDACTED) : REDACTED;
  }
  return query;
}
