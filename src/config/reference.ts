import { zodToJsonSchema } from 'zod-to-json-schema';
import { cutoverConfigSchema } from './schema.js';

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  required?: string[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  additionalProperties?: boolean | JsonSchema;
  $ref?: string;
  [k: string]: unknown;
};

/**
 * JSON Schema of the config file, generated from the zod schemas (so it cannot drift from what
 * `cutover validate` enforces). Editors with a YAML language server can use it for completion.
 */
export function configJsonSchema(): JsonSchema {
  const schema = zodToJsonSchema(cutoverConfigSchema, { name: 'CutoverConfig', effectStrategy: 'input', $refStrategy: 'none' }) as JsonSchema;
  return { ...schema, title: 'cutover configuration', description: 'Generated from src/config/schema.ts by `cutover schema`; do not edit.' };
}

/** One row per key path: type, default, constraint. The reference in docs/configuration.md. */
export function configReferenceMarkdown(): string {
  const root = configJsonSchema();
  const def = (root.definitions as Record<string, JsonSchema>)?.CutoverConfig ?? root;
  const rows: string[] = [];
  walk(def, '', rows);
  return [
    '# Configuration reference',
    '',
    'Generated from the zod schemas in `src/config/schema.ts` (`npm run docs:config`); a test fails when this',
    'file and the schemas disagree. JSON Schema for editors: [config-schema.json](config-schema.json) or',
    '`cutover schema`. Durations take `500ms`, `5s`, `1m`, `2h`, `7d` or milliseconds. `${VAR}` and',
    '`${VAR:-default}` are replaced from the environment before validation.',
    '',
    '| key | type | default | rule |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

function walk(node: JsonSchema, path: string, rows: string[]): void {
  const variants = node.anyOf ?? node.oneOf;
  if (variants && variants.every((v) => v.properties)) {
    // A discriminated union (the bus kinds): one block per variant, named by its discriminator.
    for (const v of variants) {
      const kindProp = Object.entries(v.properties ?? {}).find(([, p]) => p.const !== undefined || p.enum?.length === 1);
      const label = kindProp ? `${kindProp[0]}: ${String(kindProp[1].const ?? kindProp[1].enum?.[0])}` : 'variant';
      rows.push(`| \`${path}\` (${label}) | object | | |`);
      walkProperties(v, path, rows);
    }
    return;
  }
  if (node.properties) {
    walkProperties(node, path, rows);
    return;
  }
  if (node.type === 'array' && node.items?.properties) {
    walkProperties(node.items, `${path}[]`, rows);
  }
}

function walkProperties(node: JsonSchema, path: string, rows: string[]): void {
  const required = new Set(node.required ?? []);
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const full = path ? `${path}.${key}` : key;
    rows.push(`| \`${full}\` | ${typeOf(child)}${required.has(key) && child.default === undefined ? ' (required)' : ''} | ${child.default === undefined ? '' : `\`${JSON.stringify(child.default)}\``} | ${rule(child)} |`);
    walk(child, full, rows);
  }
}

function typeOf(node: JsonSchema): string {
  if (node.const !== undefined) return `\`${JSON.stringify(node.const)}\``;
  if (node.enum) return node.enum.map((e) => `\`${String(e)}\``).join(' \\| ');
  const variants = node.anyOf ?? node.oneOf;
  if (variants) return [...new Set(variants.map(typeOf))].join(' \\| ');
  if (node.type === 'array') return `array of ${node.items ? typeOf(node.items) : 'any'}`;
  if (Array.isArray(node.type)) return node.type.join(' \\| ');
  if (node.type === 'object' && !node.properties && typeof node.additionalProperties === 'object') return `map of ${typeOf(node.additionalProperties)}`;
  return node.type ?? 'any';
}

function rule(node: JsonSchema): string {
  const parts: string[] = [];
  if (node.pattern) parts.push(`matches \`${node.pattern.replace(/\|/g, '\\|')}\``);
  if (node.minimum !== undefined) parts.push(`≥ ${node.minimum}`);
  if (node.maximum !== undefined) parts.push(`≤ ${node.maximum}`);
  if (typeof node.minLength === 'number') parts.push(`length ≥ ${node.minLength}`);
  if (node.format) parts.push(`format ${String(node.format)}`);
  return parts.join(', ');
}
