import { z } from 'zod';
import { checkUniqueNames, hostPort, httpUrl } from './fields.js';
import { busConfigSchema } from './bus.js';
import { flowObjectSchema, refineFlow } from './flow.js';
import { canonicalRpcMethod } from '../flows/rpc.js';
import { flowReadinessSchema, readinessSchema } from './readiness.js';
import { flowShadowKeys, shadowConfigSchema, shadowInProcess } from './shadow.js';
import { sidecarConfigShape } from './sidecar.js';
import { observeSchema } from './observe.js';
import { identityConfigShape, operatorIdentitySchema } from './identity.js';
import { aclConfigShape } from './acl.js';
import { sagasSchema } from './saga.js';
import { permissionsOf, ruleMatcher } from '../acl/rules.js';
import { observationsTopicOf } from '../events/wire.js';
import { DLQ_SUFFIX, MAX_TOPIC_LENGTH, TOPIC_NAME } from '../bus/topics.js';


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

const pemFile = z.string().min(1);

/** `admin.tls`: the admin API serves HTTPS; with a client CA, clients may present certificates. */
export const adminTlsSchema = z
  .object({
    /** PEM certificate (chain) of the admin listener. */
    certFile: pemFile,
    /** PEM private key of certFile. */
    keyFile: pemFile,
    /** PEM CA certificate(s) whose client certificates the admin API verifies; no other CA is trusted for clients. */
    clientCaFile: pemFile.optional(),
    /** true: the TLS handshake refuses clients without a certificate from clientCaFile (mutual TLS for every client). */
    requireClientCert: z.boolean().default(false),
  })
  .strict()
  .superRefine((tls, ctx) => {
    if (tls.requireClientCert && tls.clientCaFile === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['requireClientCert'], message: 'needs admin.tls.clientCaFile (the CA that signs client certificates)' });
    }
  });

/** A client certificate standing for a token: its subject common name, exactly, and what it may do. */
export const adminClientCertSchema = z
  .object({
    cn: z.string().min(1),
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
    /**
     * The operator key flips made through this admin API are signed with (docs/security.md, Control plane).
     * Without it they are signed with `identity:`, which must then be one of `trust.operators`.
     */
    operatorIdentity: operatorIdentitySchema.optional(),
    /** Serve the admin API over HTTPS, optionally verifying client certificates (admin.clientCerts). */
    tls: adminTlsSchema.optional(),
    /** Client certificates (verified against admin.tls.clientCaFile) that stand for a token, by subject CN. */
    clientCerts: z.array(adminClientCertSchema).default([]),
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
    /** Operations spanning several agents, driven over the bus with compensations (docs/sagas.md). */
    sagas: sagasSchema.default([]),
    // The sidecar's own settings (routes, capture limits, redaction, encryption, spool, publisher).
    ...sidecarConfigShape,
    /** Discovery: the sidecar records every call it forwards into candidate flows (src/config/observe.ts). */
    observe: observeSchema.optional(),
    /**
     * An AsyncAPI document written by `cutover asyncapi`: calls of flows in shadow mode whose request or
     * response body stops fitting its payload schemas are counted as contract drift in the report.
     */
    contract: z.string().min(1).optional(),
    ...identityConfigShape,
    ...aclConfigShape,
  })
  .strict()
  .superRefine((config, ctx) => {
    checkUniqueNames(config.flows, ctx, ['flows'], 'flow');
    refineRpcFlows(config.flows, ctx);
    refineObservationTopics(config.flows, config.observationsTopic, ctx);
    const sagas = new Set(config.sagas.map((s) => s.name));
    config.flows.forEach((flow, i) => {
      if (flow.saga === undefined) return;
      if (!sagas.has(flow.saga)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', i, 'saga'], message: `no saga named ${JSON.stringify(flow.saga)} under sagas:` });
      if (flow.shadow?.target !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', i, 'saga'], message: 'a flow answered by a saga has no shadow.target (the saga is its bus side)' });
    });
    if (config.encryption) {
      const seenField = new Map<string, number>();
      config.encryption.fields.forEach((field, i) => {
        if (seenField.has(field)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['encryption', 'fields', i], message: 'duplicate field' });
        seenField.set(field, i);
      });
      const seenKey = new Set([config.encryption.keyId]);
      config.encryption.keys.forEach((key, i) => {
        if (seenKey.has(key.keyId)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['encryption', 'keys', i, 'keyId'], message: `duplicate key id ${key.keyId} (each kid names one key)` });
        seenKey.add(key.keyId);
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
    if (config.admin.auth && !config.admin.token && config.admin.tokens.length === 0 && config.admin.clientCerts.length === 0) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['admin', 'token'], message: 'required, or admin.tokens or admin.clientCerts (or set admin.auth: false on a loopback listen address)' });
    }
    if (config.admin.clientCerts.length > 0 && config.admin.tls?.clientCaFile === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['admin', 'clientCerts'], message: 'needs admin.tls.clientCaFile: only certificates signed by that CA are mapped to scopes' });
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
  refineSidecarAcl(config, ctx);
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

/**
 * With an enforced `acl:`, a sidecar must be allowed what its config makes it do: publish every flow it
 * dual-writes (`flows[i].topic`), consume the flows its `deliver:` side serves, and run the shadow side when
 * `shadow.inProcess` says so. Caught here, at boot, rather than as refused publishes at run time.
 */
function refineSidecarAcl(config: CutoverConfig, ctx: z.RefinementCtx): void {
  const acl = config.acl;
  if (!acl?.enforce) return;
  const identity = config.identity?.agent ?? config.agent;
  if (!acl.agents[identity]) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['acl', 'agents'], message: `no entry for ${identity}, the identity this sidecar publishes as: add acl.agents.${identity} with its publish and consume topics` });
    return;
  }
  if (shadowInProcess(config) && !acl.shadow.includes(identity)) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['acl', 'shadow'], message: `the shadow side runs inside this sidecar (shadow.inProcess, the default on the embedded bus) as ${identity}: list ${identity} under acl.shadow` });
  }
  const allowed = permissionsOf(acl, identity, { observations: config.observationsTopic });
  const may = (rules: typeof allowed.publish, topic: string): boolean => rules.some((r) => ruleMatcher(r)(topic));
  const delivered = new Set(config.deliver?.flows ?? []);
  config.flows.forEach((flow, i) => {
    if (delivered.has(flow.name)) {
      if (!may(allowed.consume, flow.topic)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', i, 'topic'], message: `${flow.topic} is served by deliver: but acl.agents.${identity}.consume does not cover it` });
    } else if (!may(allowed.publish, flow.topic)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', i, 'topic'], message: `${flow.topic} is outside what ${identity} may publish: add it (or a pattern covering it) to acl.agents.${identity}.publish` });
    }
  });
}

export type SidecarConfig = z.infer<typeof sidecarConfigSchema>;
export type SidecarConfigInput = z.input<typeof sidecarConfigSchema>;

/**
 * A JSON-RPC flow whose every call an earlier flow of the same URL takes first (same method, A2A aliases
 * included, and no narrower tool list) would never see a call: refused, naming both.
 */
function refineRpcFlows(flows: ReadonlyArray<{ name: string; match: { method: string; path: string; rpc?: string | string[] | undefined; tool?: string | string[] | undefined } }>, ctx: z.RefinementCtx): void {
  const list = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : typeof v === 'string' ? [v] : v);
  const url = (f: (typeof flows)[number]): string => `${f.match.method} ${f.match.path.replace(/(.)\/$/, '$1')}`;
  flows.forEach((later, j) => {
    const methods = list(later.match.rpc);
    if (!methods) return;
    const tools = list(later.match.tool);
    for (let i = 0; i < j; i++) {
      const earlier = flows[i]!;
      const earlierMethods = list(earlier.match.rpc);
      if (!earlierMethods || url(earlier) !== url(later)) continue;
      const taken = new Set(earlierMethods.map(canonicalRpcMethod));
      const earlierTools = list(earlier.match.tool);
      const shadowed = methods.every((m) => taken.has(canonicalRpcMethod(m))) && (earlierTools === undefined || (tools !== undefined && tools.every((t) => earlierTools.includes(t))));
      if (shadowed) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', j, 'match', 'rpc'], message: `every call this flow selects on ${url(later)} goes to flows[${i}] (${earlier.name}), declared first: it would never see one` });
        return;
      }
    }
  });
}

/**
 * Each flow's observations go to `<observationsTopic>.<flow>`, so a flow name must make that a topic every
 * bus accepts (Kafka's rules: levels of letters, digits, `_` or `-`, at most 249 characters) and must not end
 * in a `dlq` level, which would make the topic look like a dead-letter topic that wildcards skip.
 */
function refineObservationTopics(flows: ReadonlyArray<{ name: string }>, base: string, ctx: z.RefinementCtx): void {
  flows.forEach((flow, i) => {
    const topic = observationsTopicOf(flow.name, base);
    const why = !TOPIC_NAME.test(topic)
      ? 'has an empty level (two dots in a row, or a dot at either end)'
      : topic.length > MAX_TOPIC_LENGTH
        ? `is ${topic.length} characters long, over the ${MAX_TOPIC_LENGTH} a topic name may have`
        : topic.endsWith(DLQ_SUFFIX)
          ? 'ends in a dlq level, the suffix of dead-letter topics'
          : undefined;
    if (why) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['flows', i, 'name'], message: `flow ${JSON.stringify(flow.name)} cannot name its observation topic: ${topic} ${why}` });
  });
}
