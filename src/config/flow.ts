import { z } from 'zod';
import { conventionProblem } from '../bus/topics.js';
import { durationSchema } from '../duration.js';

export { flowModeSchema, type FlowMode } from '../flips/mode.js';
import { flowModeSchema } from '../flips/mode.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export const topicSchema = z.string().superRefine((topic, ctx) => {
  const problem = conventionProblem(topic);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
});

/** A JSON-RPC method name as A2A and MCP spell them (`SendMessage`, `message/send`, `tools/call`). */
const rpcNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_./-]*$/, 'expected a JSON-RPC method name like SendMessage, message/send or tools/call');
const toolNameSchema = z.string().min(1, 'expected a tool, prompt or resource name').max(256);

/** JSON-RPC methods whose `params` name a tool, prompt or resource (what `match.tool` selects on). */
const NAMED_METHODS = ['tools/call', 'prompts/get', 'resources/read', 'resources/subscribe', 'resources/unsubscribe'];

/** `:name` segments of a path template. */
const PARAM = /^:([A-Za-z_][A-Za-z0-9_]*)$/;

/** The names of the `:params` in a path template, in order. */
export function templateParams(template: string): string[] {
  return template
    .split('/')
    .map((segment) => PARAM.exec(segment)?.[1])
    .filter((name): name is string => name !== undefined);
}

/** Flow fields without cross-field checks, so sections can extend a flow (shadow, compare, readiness keys). */
export const flowObjectSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'expected lowercase letters, digits, dots, _ or - (like inventory.reserve)'),
    match: z
      .object({
        method: z.preprocess((m) => (typeof m === 'string' ? m.toUpperCase() : m), z.enum(HTTP_METHODS)),
        path: z
          .string()
          .regex(/^\/[^\s?#]*$/, 'expected a path starting with / (templates like /stock/:sku allowed, no query)')
          .refine((p) => p.split('/').every((s) => !s.startsWith(':') || PARAM.test(s)), 'a :param segment must be : followed by a name like :sku'),
        /**
         * JSON-RPC method(s) of the body (A2A, MCP): the flow takes only those calls on this URL. A2A 0.3 and
         * 1.0 names are aliases (`SendMessage` also matches `message/send`). A flow on the same URL without
         * `rpc` takes the calls no `rpc` flow takes.
         */
        rpc: z.union([rpcNameSchema, z.array(rpcNameSchema).min(1, 'expected at least one method')]).optional(),
        /** With `rpc: tools/call` (or prompts/get, resources/read): the tool, prompt or resource name(s) in `params`. */
        tool: z.union([toolNameSchema, z.array(toolNameSchema).min(1, 'expected at least one name')]).optional(),
      })
      .strict(),
    topic: topicSchema,
    /**
     * Partition key of the flow's events: `body.<field>[.<field>...]`, `path.<param>`, `query.<name>`,
     * `header.<name>`, or on a flow with `match.rpc` `rpc.<member>[.<field>...]` (`rpc.params.message.contextId`).
     */
    key: z
      .string()
      .regex(/^(body|path|query|header|rpc)\.[A-Za-z0-9_.-]+$/, 'expected body.<field>, path.<param>, query.<name>, header.<name> or rpc.<member>')
      .optional(),
    schemaVersion: z.string().regex(/^\d+(\.\d+){0,2}$/, 'expected a version like 1, 1.2 or 1.2.3').default('1'),
    mode: flowModeSchema.default('direct'),
    /** Bus path (canary/bus modes): how long the sidecar waits for the reply. Default 5s (DEFAULT_REPLY_TIMEOUT). */
    timeout: durationSchema.optional(),
    /** Bus path: `direct` serves a call directly when the reply times out or the bus cannot take the command. */
    fallback: z.enum(['none', 'direct']).optional(),
    /** `request` (default): the caller waits for the reply. `event`: fire-and-forget, answered once the bus or spool holds it. */
    kind: z.enum(['request', 'event']).optional(),
    /** `kind: event`: the status the caller gets once the event is held. Default 202. */
    status: z.number().int().min(200).max(299).optional(),
    /** Bus path: also call the direct path in the background and publish both results for comparison (safe calls only). */
    verify: z.boolean().optional(),
    /** The call may be repeated without harm (GET, HEAD and OPTIONS always are). Required for `verify` on other methods. */
    safe: z.boolean().optional(),
    /**
     * In canary:N, and in bus with verify, evidence keeps coming; when the flow turns NOT_READY the sidecar
     * rolls it back to the mode it came from (`auto`, the default), only alerts (`alert`), or does nothing.
     */
    rollback: z.enum(['auto', 'alert', 'off']).default('auto'),
    /**
     * Where the version of each side's code comes from, so evidence is tied to the code that produced it:
     * `header` names a response header both agents set (like x-agent-version); `direct` and `shadow` are
     * fixed values used when the header is absent. A new version on either side starts the evidence afresh.
     */
    versions: z
      .object({
        header: z.string().regex(/^[A-Za-z0-9-]+$/, 'expected a header name like x-agent-version').optional(),
        direct: z.string().min(1).max(100).optional(),
        shadow: z.string().min(1).max(100).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** Methods whose calls are safe to repeat: `verify` may call the direct path again for them. */
export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Cross-field checks of a flow, reusable on schemas that extend {@link flowObjectSchema}. */
export function refineFlow(
  flow: {
    key?: string | undefined;
    match: { path: string; method?: string; rpc?: string | string[] | undefined; tool?: string | string[] | undefined };
    verify?: boolean | undefined; safe?: boolean | undefined; status?: number | undefined; kind?: string | undefined },
  ctx: z.RefinementCtx,
): void {
  if (flow.verify && !flow.safe && flow.match.method !== undefined && !SAFE_METHODS.has(flow.match.method)) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      path: ['verify'],
      message: `verify repeats the call on the direct path; ${flow.match.method} is not safe to repeat (mark the flow safe: true if it is)`,
    });
  }
  if (flow.status !== undefined && flow.kind !== 'event') {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['status'], message: 'status applies to kind: event only' });
  }
  const rpc = flow.match.rpc === undefined ? undefined : typeof flow.match.rpc === 'string' ? [flow.match.rpc] : flow.match.rpc;
  if (rpc && flow.match.method !== undefined && flow.match.method !== 'POST') {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['match', 'method'], message: `JSON-RPC calls are POSTed; match.rpc needs method POST, not ${flow.match.method}` });
  }
  if (flow.match.tool !== undefined && !(rpc && rpc.every((m) => NAMED_METHODS.includes(m)))) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['match', 'tool'], message: `match.tool needs match.rpc naming only methods with a named target (${NAMED_METHODS.join(', ')})` });
  }
  if (flow.key?.startsWith('rpc.') && !rpc) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['key'], message: `${flow.key} reads the JSON-RPC call: the flow needs match.rpc (or key it on body.<field>)` });
  }
  if (flow.key?.startsWith('path.')) {
    const param = flow.key.slice('path.'.length);
    const params = templateParams(flow.match.path);
    if (!params.includes(param)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['key'],
        message: `path parameter ${JSON.stringify(param)} is not in match.path ${flow.match.path}${params.length ? ` (it has ${params.map((p) => ':' + p).join(', ')})` : ''}`,
      });
    }
  }
}

export const flowSchema = flowObjectSchema.superRefine(refineFlow);

export type FlowConfig = z.infer<typeof flowSchema>;
