import { readFileSync } from 'node:fs';
import { parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, ErrorCodes } from '../errors.js';
import { EnvInterpolation } from './interpolate.js';

/** `flows[1].match.path` from a zod issue path. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), '') || '(root)';
}

/** Every zod issue as `path: message`, one string each. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === 'invalid_union' && 'unionErrors' in issue) {
      // Report the branch that got furthest rather than "Invalid input".
      const best = issue.unionErrors.reduce((a, b) => (maxDepth(b) > maxDepth(a) ? b : a));
      return formatIssues(best);
    }
    if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`);
    return [`${formatPath(issue.path)}: ${issue.message}`];
  });
}

function maxDepth(error: z.ZodError): number {
  return Math.max(0, ...error.issues.map((i) => i.path.length));
}

/**
 * Parses YAML text with `${VAR}` interpolation and validates it against `schema`. Throws one ConfigError
 * (CUTOVER_CONFIG_INVALID) listing every problem with its path.
 */
export function parseConfigText<S extends z.ZodTypeAny>(text: string, schema: S, options: { env?: NodeJS.ProcessEnv; source?: string } = {}): z.infer<S> {
  const source = options.source ?? 'config';
  const issues: string[] = [];
  const env = new EnvInterpolation(text, options.env ?? process.env);
  const doc = parseDocument(env.text, { prettyErrors: true, uniqueKeys: true });
  for (const err of doc.errors) issues.push(`line ${err.linePos?.[0]?.line ?? '?'}: ${err.message.split('\n')[0]}`);
  if (issues.length > 0) throw invalid(source, issues);
  env.apply(doc, (name, line) => {
    issues.push(`line ${line}: environment variable ${name} is not set (use \${${name}:-default} for a default)`);
  });
  if (issues.length > 0) throw invalid(source, issues);
  const value = toJS(doc, source);
  const result = schema.safeParse(value);
  if (!result.success) throw invalid(source, formatIssues(result.error).map((issue) => env.scrub(issue)));
  return result.data;
}

/** Reads and validates a config file. CUTOVER_CONFIG_NOT_FOUND when it cannot be read. */
export function loadConfigFile<S extends z.ZodTypeAny>(file: string, schema: S, options: { env?: NodeJS.ProcessEnv } = {}): z.infer<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(ErrorCodes.CONFIG_NOT_FOUND, `cannot read config file ${file}: ${(err as Error).message}`, [], { cause: err });
  }
  return parseConfigText(text, schema, { ...options, source: file });
}

/**
 * yaml's `maxAliasCount` (uses of an anchor times the aliases inside it): ample for an anchor of flow
 * defaults shared by dozens of flows, far below nested aliases that expand exponentially ("billion laughs").
 */
export const MAX_ALIAS_COUNT = 100;

/** The document as plain values; an alias problem found while resolving is the file's fault, not ours. */
function toJS(doc: Document, source: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (err) {
    // yaml raises ReferenceError, without a code, for an alias it cannot resolve or may not expand.
    if (!(err instanceof ReferenceError)) throw err;
    const bomb = /alias count/i.test(err.message);
    throw invalid(source, [bomb ? `too many alias expansions (limit ${MAX_ALIAS_COUNT}): aliases nested in aliases expand exponentially; write the values out or use fewer aliases` : err.message], err);
  }
}

function invalid(source: string, issues: string[], cause?: unknown): ConfigError {
  return new ConfigError(ErrorCodes.CONFIG_INVALID, `${source} is invalid:\n  ${issues.join('\n  ')}`, issues, cause === undefined ? {} : { cause });
}
