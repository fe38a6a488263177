/**
 * The shape of JSON payloads, merged across observed calls: which types each field took, how often it was
 * present, and (for scalars) the distinct values seen, up to a cap. Plain JSON, so a sidecar can save it and
 * a later run (or `cutover discover`) can load it. Bounded: depth, properties per object and values per
 * field are capped, whatever the payloads look like.
 */

/** JSON types as JSON Schema names them (`integer` apart from `number`). */
export type JsonType = 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean' | 'null';

export interface ShapeNode {
  /** Times this node was seen. */
  n: number;
  /** Times seen per JSON type. */
  types: Partial<Record<JsonType, number>>;
  /** Object members. */
  props?: Record<string, ShapeNode>;
  /** Array elements, all merged. */
  items?: ShapeNode;
  /** Distinct scalar values (JSON text), at most {@link ShapeLimits.values}. */
  values?: string[];
  /** More distinct values were seen than `values` holds. */
  more?: boolean;
  /** Times a value repeated one already in `values` (values recur: the field names an entity). */
  repeats?: number;
}

export interface ShapeLimits {
  depth: number;
  props: number;
  values: number;
}

export const DEFAULT_SHAPE_LIMITS: ShapeLimits = { depth: 6, props: 64, values: 64 };

export function jsonType(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value as JsonType;
}

/** `values` of a node as a set, for the check every added value makes (kept beside the plain JSON node). */
const valueSets = new WeakMap<ShapeNode, Set<string>>();

/** Adds one value to a shape (a new shape when `node` is undefined). */
export function addToShape(node: ShapeNode | undefined, value: unknown, limits: ShapeLimits = DEFAULT_SHAPE_LIMITS, depth = 0): ShapeNode {
  const out: ShapeNode = node ?? { n: 0, types: {} };
  out.n++;
  const type = jsonType(value);
  out.types[type] = (out.types[type] ?? 0) + 1;
  if (depth >= limits.depth) return out;
  if (type === 'object') {
    out.props ??= {};
    for (const [key, member] of Object.entries(value as Record<string, unknown>)) {
      if (!(key in out.props) && Object.keys(out.props).length >= limits.props) continue;
      out.props[key] = addToShape(out.props[key], member, limits, depth + 1);
    }
  } else if (type === 'array') {
    for (const item of value as unknown[]) out.items = addToShape(out.items, item, limits, depth + 1);
  } else if (type !== 'null') {
    const text = JSON.stringify(value);
    const values = (out.values ??= []);
    let known = valueSets.get(out);
    if (!known) valueSets.set(out, (known = new Set(values)));
    if (known.has(text)) out.repeats = (out.repeats ?? 0) + 1;
    else if (values.length < limits.values && text.length <= 200) {
      values.push(text);
      known.add(text);
    } else out.more = true;
  }
  return out;
}

/** Merges two shapes (two candidates folded into one template). */
export function mergeShapes(a: ShapeNode | undefined, b: ShapeNode | undefined, limits: ShapeLimits = DEFAULT_SHAPE_LIMITS): ShapeNode | undefined {
  if (!a || !b) return a ?? b;
  const out: ShapeNode = { n: a.n + b.n, types: { ...a.types } };
  for (const [t, c] of Object.entries(b.types) as Array<[JsonType, number]>) out.types[t] = (out.types[t] ?? 0) + c;
  if (a.props || b.props) {
    out.props = {};
    for (const key of new Set([...Object.keys(a.props ?? {}), ...Object.keys(b.props ?? {})])) {
      if (Object.keys(out.props).length >= limits.props) break;
      out.props[key] = mergeShapes(a.props?.[key], b.props?.[key], limits)!;
    }
  }
  if (a.items || b.items) out.items = mergeShapes(a.items, b.items, limits);
  if (a.values || b.values) {
    const values = [...(a.values ?? [])];
    let repeats = (a.repeats ?? 0) + (b.repeats ?? 0);
    let more = a.more === true || b.more === true;
    for (const v of b.values ?? []) {
      if (values.includes(v)) repeats++;
      else if (values.length < limits.values) values.push(v);
      else more = true;
    }
    out.values = values;
    if (repeats) out.repeats = repeats;
    if (more) out.more = true;
  }
  return out;
}

/** A JSON Schema (draft 2020-12 subset, as AsyncAPI 3.0 payloads take it). */
export type JsonSchema = { [key: string]: unknown };

/** Evidence needed before a field's values are declared an enum: calls seen, and at most this many values. */
const ENUM_MIN_SAMPLES = 20;
const ENUM_MAX_VALUES = 8;

/**
 * The JSON Schema a shape supports: types seen, `required` for members present every time their object
 * was, `enum` for strings that took few values over many calls (no more values seen than the cap).
 */
export function shapeToSchema(node: ShapeNode | undefined): JsonSchema {
  if (!node || node.n === 0) return {};
  const types = (Object.keys(node.types) as JsonType[]).filter((t) => (node.types[t] ?? 0) > 0);
  // An integer field that was sometimes fractional is a number.
  const merged = types.includes('number') ? types.filter((t) => t !== 'integer') : types;
  const schema: JsonSchema = { type: merged.length === 1 ? merged[0] : merged.sort() };
  const objects = node.types.object ?? 0;
  if (node.props && objects > 0) {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const [key, child] of Object.entries(node.props)) {
      properties[key] = shapeToSchema(child);
      if (child.n >= objects) required.push(key);
    }
    schema.properties = properties;
    if (required.length) schema.required = required;
  }
  if (node.items) schema.items = shapeToSchema(node.items);
  const strings = node.types.string ?? 0;
  if (merged.length === 1 && merged[0] === 'string' && !node.more && node.values && strings >= ENUM_MIN_SAMPLES && node.values.length <= ENUM_MAX_VALUES) {
    schema.enum = node.values.map((v) => JSON.parse(v) as string);
  }
  return schema;
}

/**
 * Where a value stops fitting a schema made by {@link shapeToSchema}: the first problem as
 * `<pointer>: <what>`, or undefined when it fits. Extra members are allowed (a producer adding a field is
 * not drift); a missing required member, a new type or a value outside an enum is.
 */
export function schemaMismatch(schema: JsonSchema, value: unknown, pointer = ''): string | undefined {
  const type = jsonType(value);
  const allowed = schema.type === undefined ? undefined : ([] as string[]).concat(schema.type as string | string[]);
  if (allowed && !allowed.includes(type) && !(type === 'integer' && allowed.includes('number'))) return `${pointer || '/'}: expected ${allowed.join(' or ')}, got ${type}`;
  if (Array.isArray(schema.enum) && !schema.enum.includes(value as never)) return `${pointer || '/'}: ${JSON.stringify(value)} is not one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if (type === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of (schema.required as string[] | undefined) ?? []) if (!(key in obj)) return `${pointer}/${key}: missing`;
    const props = (schema.properties as Record<string, JsonSchema> | undefined) ?? {};
    for (const [key, member] of Object.entries(obj)) {
      const sub = props[key];
      const problem = sub && schemaMismatch(sub, member, `${pointer}/${key}`);
      if (problem) return problem;
    }
  } else if (type === 'array' && schema.items) {
    const items = value as unknown[];
    for (let i = 0; i < items.length; i++) {
      const problem = schemaMismatch(schema.items as JsonSchema, items[i], `${pointer}/${i}`);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** Scalar leaves of an object shape, as `a.b.c` paths (arrays are not descended into: no key lives there). */
export function scalarLeaves(node: ShapeNode | undefined, prefix = '', depth = 0): Array<{ path: string; node: ShapeNode }> {
  if (!node?.props || depth > 3) return [];
  return Object.entries(node.props).flatMap(([key, child]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    if (child.props) return scalarLeaves(child, path, depth + 1);
    return child.values ? [{ path, node: child }] : [];
  });
}

/** A body parsed as JSON when it is a JSON object or array; undefined otherwise (absent, text, malformed). */
export function jsonBody(raw: Buffer | undefined): unknown {
  if (!raw || raw.length === 0 || (raw[0] !== 0x7b && raw[0] !== 0x5b)) return undefined;
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'));
    return jsonType(value) === 'object' || jsonType(value) === 'array' ? value : undefined;
  } catch {
    return undefined;
  }
}
