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

/**
 * A query parameter name as redaction compares it: percent-decoded, lowercased, array brackets dropped,
 * `-`, `_`, `.` and spaces removed. Servers and frameworks read `API_KEY`, `api-key`, `Api_Key`,
 * `access_token[]` and `access%5Ftoken` as the parameter `api_key` or `access_token`, so a mask that
 * compared names exactly would let those spellings through.
 */
export function queryNameKey(name: string): string {
  return decodeName(name)
    .toLowerCase()
    .replace(/(?:\[[^\]]*\])+$/, '')
    .replace(/[-_.\s]/g, '');
}

/** Masks the values of `names` in a query string (without `?`); returns the input when nothing matches. */
export function redactSearch(search: string, names: ReadonlySet<string>): string {
  if (!search || names.size === 0) return search;
  const secret = secretKeys(names);
  let changed = false;
  const parts = search.split('&').map((pair) => {
    const eq = pair.indexOf('=');
    if (eq === -1) return pair;
    const rawName = pair.slice(0, eq);
    if (!secret.has(queryNameKey(rawName))) return pair;
    changed = true;
    return `${rawName}=${encodeURIComponent(REDACTED)}`;
  });
  return changed ? parts.join('&') : search;
}

/** Masks the values of `names` in a parsed query (in place) and returns it. */
export function redactQuery(query: Record<string, string | string[]>, names: ReadonlySet<string>): Record<string, string | string[]> {
  if (names.size === 0) return query;
  const secret = secretKeys(names);
  for (const [name, value] of Object.entries(query)) {
    if (!secret.has(queryNameKey(name))) continue;
    query[name] = Array.isArray(value) ? value.map(() => REDACTED) : REDACTED;
  }
  return query;
}

// Callers build their name set once from the config: normalise it once too.
const keysOf = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();

function secretKeys(names: ReadonlySet<string>): ReadonlySet<string> {
  let keys = keysOf.get(names);
  if (!keys) {
    keys = new Set([...names].map(queryNameKey));
    keysOf.set(names, keys);
  }
  return keys;
}

/**
 * Percent-decodes like a query parser does: `+` is a space and a malformed escape does not hide the rest
 * (`access%5Ftoken[%ZZ]` still reads as `access_token[%ZZ]`, an `access_token` array).
 */
function decodeName(raw: string): string {
  const plus = raw.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}
