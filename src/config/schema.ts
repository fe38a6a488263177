import { z } from 'zod';
import { hostPort, httpUrl } from './fields.js';
import { busConfigSchema } from './bus.js';
import { flowObjectSchema, refineFlow } from './flow.js';
import { flowReadinessSchema, readinessSchema } from './readiness.js';
import { flowShadowKeys, shadowConfigSchema } from './shadow.js';
import { sidecarConfigShape } from './sidecar.js';
import { identityConfigShape } from './identity.js';


/** What an admin token may do: `read` every GET route (status, flows, history, report, metrics), `flip` flows. */
export const ADMIN_SCOPES = ['read', 'flip'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number];

const adminToken = z.string().min(16, 'expected at least 16 characters');

export const adminTokenSchema = z
  .object({
    token: adminToken,
    scopes: z.array(z.enum(ADMIN_SCOPES)).min(1, 'expected at least one scope (read, flip)'),
  })
  .strict();

export const adminSchema = z
  .object({
    listen: hostPort.default('127.0.0.1:15001'),
    /** Bearer token with every scope. Required unless `tokens` are given or `auth: false` on a loopback listener. */
    token: adminToken.optional(),
    /** Bearer tokens with their own scopes: a scraper gets `[read]`, an operator `[read, flip]`. */
    tokens: z.array(adminTokenSchema).default([]),
    auth: z.boolean().default(true),
    /** Failed authentications one client address may make per minute; past it every request gets 429. */
    maxAuthFailures: z.number().int().min(1).max(10_000).default(10),
  })
  .strict();

/** A flow as the config file declares it: routing and keys, plus shadow, compare, noise and readiness. */
export const configFlowSchema = flowObjectSchema
  .extend({ ...flowShadowKeys, readiness: flowReadinessSchema.optional() })
  .superRefine(refineFlow);

/** The whole cutover config file. Every part reads its own section from here. */
export const cutoverConfigSchema = z
  .object({
    /** Name of the agent this sidecar stands in front of (CloudEvent source `/agents/<agent>`). */
    agent: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a lowercase agent name like inventory'),
    listen: hostPort.default('127.0.0.1:15000'),
    upstream: httpUrl.optional(),
    admin: adminSchema.default({}),
    bus: busConfigSchema.default({ kind: 'embedded' }),
    /** Directory for the local spool and the embedded bus default path. */
    dataDir: z.string().default('.data'),
    log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).strict().default({}),
    flows: z.array(configFlowSchema).default([]),
    /** Shadow side: comparator window, open-pair bound, dedupe store, in-process or not (shadow/options.ts). */
    shadow: shadowConfigSchema.default({}),
    /** Default readiness criteria of every flow (reports/options.ts); a flow's `readiness:` overrides keys. */
    readiness: readinessSchema.default({}),
    // The sidecar's own settings (routes, capture limits, redaction, encryption, spool, publisher).
    ...sidecarConfigShape,
    ...identityConfigShape,
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.flows.forEach((flow, i) => {
      const first = seen.get(flow.name);
      if (first !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', i, 'name'], message: `duplicate flow name (also flows[${first}])` });
      else seen.set(flow.name, i);
    });
    if (config.encryption) {
      const seenField = new Map<string, number>();
      config.encryption.fields.forEach((field, i) => {
        if (seenField.has(field)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['encryption', 'fields', i], message: 'duplicate field' });
        seenField.set(field, i);
      });
    }
    // A key from a redacted header is published as an HMAC digest, which needs the encryption key; an
    // unkeyed hash of a token or cookie can be checked against guesses, so no key means no such flow key.
    if (!config.encryption) {
      const redacted = new Set(config.redact.headers);
      config.flows.forEach((flow, i) => {
        const header = flow.key?.startsWith('header.') ? flow.key.slice('header.'.length).toLowerCase() : undefined;
        if (header === undefined || !redacted.has(header)) return;
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', i, 'key'], message: `${flow.key} is a credential header (in redact.headers): a partition key from it is published as a keyed digest, which needs encryption.keyEnv; configure encryption or key the flow on something else` });
      });
    }
    if (config.spool.segmentBytes > config.spool.maxBytes) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['spool', 'segmentBytes'], message: 'must not exceed spool.maxBytes' });
    }
    if (config.admin.listen === config.listen && !config.listen.endsWith(':0')) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['admin', 'listen'], message: 'must differ from listen (the admin API has its own listener)' });
    }
    if (config.admin.auth && !config.admin.token && config.admin.tokens.length === 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['admin', 'token'], message: 'required, or admin.tokens (or set admin.auth: false on a loopback listen address)' });
    }
    if (!config.admin.auth && !/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):/.test(config.admin.listen)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['admin', 'auth'], message: 'auth may only be disabled on a loopback listen address' });
    }
  });

export type CutoverConfig = z.infer<typeof cutoverConfigSchema>;
export type CutoverConfigInput = z.input<typeof cutoverConfigSchema>;

/**
 * The config file as the sidecar needs it: the shared schema plus the sidecar's own rule that requests
 * must have somewhere to go (`upstream`, `routes`, or both).
 */
export const sidecarConfigSchema = cutoverConfigSchema.superRefine((config, ctx) => {
  if (!config.upstream && config.routes.length === 0) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['upstream'], message: 'required: set upstream (in front of one agent) or routes (beside a caller)' });
  }
  if (config.deliver) {
    const names = new Set(config.flows.map((f) => f.name));
    config.deliver.flows.forEach((name, i) => {
      if (!names.has(name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['deliver', 'flows', i], message: `no flow named ${JSON.stringify(name)} under flows:` });
    });
    if (!config.deliver.target && !config.upstream) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['deliver', 'target'], message: 'required when the sidecar has no upstream (where should commands go?)' });
    }
  }
});

export type SidecarConfig = z.infer<typeof sidecarConfigSchema>;
export type SidecarConfigInput = z.input<typeof sidecarConfigSchema>;
