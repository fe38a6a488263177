/**
 * Path templates inferred from the paths a sidecar sees: segments that look like identifiers (numbers,
 * UUIDs, hex digests, opaque tokens) become named parameters, so `/orders/123` and `/orders/456` are one
 * candidate flow, `/orders/:orderId`.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NUMBER = /^\d+$/;
const HEX = /^(?=.*\d)(?=.*[a-f])[0-9a-f]{8,}$/i;
/** Letters and digits mixed (`SKU-42`, `ord_9f3k2`, `AB12CD34`): a code, not a word of the API. */
const TOKEN = /^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9][A-Za-z0-9_.~-]*$/;
/** Version-like segments stay literal: `/v1/`, `/v2beta/`, `/api2/`. */
const VERSION = /^(v\d+[a-z]*|api\d*)$/i;

/** Whether a path segment holds a value (an id, a code) rather than a name of the API. */
export function isValueSegment(segment: string): boolean {
  if (segment === '' || VERSION.test(segment)) return false;
  if (NUMBER.test(segment) || UUID.test(segment) || HEX.test(segment)) return true;
  // Opaque tokens: long base64url strings, or codes mixing letters and digits.
  if (segment.length >= 16 && /^[A-Za-z0-9_-]+$/.test(segment)) return true;
  return TOKEN.test(segment) && (segment.length >= 4 || /[-_]/.test(segment));
}

/** `orders` → `order`, `categories` → `category`, `stock` → `stock`. */
export function singular(word: string): string {
  if (/ies$/.test(word)) return word.slice(0, -3) + 'y';
  if (/(ss|us)$/.test(word)) return word;
  if (/s$/.test(word) && word.length > 3) return word.slice(0, -1);
  return word;
}

/** A parameter name from the segment before it: `/orders/:orderId`, `/stock/:stockId`, first `:id`. */
function paramName(previous: string | undefined, taken: Set<string>): string {
  const base = previous && /^[A-Za-z][A-Za-z0-9_-]*$/.test(previous)
    ? singular(previous).replace(/[-_]+([a-z0-9])/gi, (_m, c: string) => c.toUpperCase()).replace(/^[A-Z]/, (c) => c.toLowerCase()) + 'Id'
    : 'id';
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}${i}`;
  taken.add(name);
  return name;
}

/** A path's inferred template and the values its parameters took. */
export interface InferredPath {
  template: string;
  params: Record<string, string>;
}

/** Splits a path (no query) into segments, ignoring one trailing slash as flow matching does. */
export function pathSegments(path: string): string[] {
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  return trimmed.split('/').slice(1);
}

/** Infers the template of one path: value segments become `:<name>` parameters. */
export function inferTemplate(path: string): InferredPath {
  const segments = pathSegments(path);
  const params: Record<string, string> = {};
  const taken = new Set<string>();
  const out = segments.map((segment, i) => {
    if (!isValueSegment(segment)) return segment;
    const name = paramName(segments[i - 1] !== undefined && !isValueSegment(segments[i - 1]!) ? segments[i - 1] : undefined, taken);
    params[name] = segment;
    return `:${name}`;
  });
  return { template: '/' + out.join('/'), params };
}

/**
 * Folds literal segments into a parameter where many paths differ only there (`/products/red-shoe`,
 * `/products/blue-hat`, ...): given the templates seen and one new template, returns the folded template
 * when at least `threshold` templates (the new one included) share everything but one literal segment.
 */
export function foldSiblings(templates: readonly string[], template: string, threshold: number): { template: string; folded: string[] } | undefined {
  const mine = pathSegments(template);
  for (let i = mine.length - 1; i >= 0; i--) {
    if (mine[i]!.startsWith(':')) continue;
    const siblings = templates.filter((t) => {
      if (t === template) return false;
      const theirs = pathSegments(t);
      return theirs.length === mine.length && !theirs[i]!.startsWith(':') && theirs.every((s, j) => j === i || s === mine[j]);
    });
    if (siblings.length + 1 < threshold) continue;
    const taken = new Set(mine.filter((s) => s.startsWith(':')).map((s) => s.slice(1)));
    const previous = i > 0 && !mine[i - 1]!.startsWith(':') ? mine[i - 1] : undefined;
    const folded = [...mine];
    folded[i] = `:${paramName(previous, taken)}`;
    return { template: '/' + folded.join('/'), folded: siblings };
  }
  return undefined;
}

/** Whether `path` fits `template` (a `:param` takes one non-empty segment); the values of its parameters. */
export function matchTemplate(template: string, path: string): Record<string, string> | undefined {
  const t = pathSegments(template);
  const p = pathSegments(path);
  if (t.length !== p.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < t.length; i++) {
    if (t[i]!.startsWith(':')) {
      if (p[i] === '') return undefined;
      params[t[i]!.slice(1)] = p[i]!;
    } else if (t[i] !== p[i]) return undefined;
  }
  return params;
}
