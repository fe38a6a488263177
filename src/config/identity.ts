import { z } from 'zod';

const agentName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a lowercase agent name like inventory');
const keyId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected a key id of letters, digits, dot, dash or underscore (at most 64)');

/** A key given inline or as a file: exactly one of the two, reported on the inline key's path. */
function oneKeySource(inline: string, file: string, example: string) {
  return (v: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    if ((v[inline] === undefined) === (v[file] === undefined)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [inline], message: `set exactly one of ${inline}${example} and ${file}` });
  };
}

/**
 * This process's signing key (Ed25519, PEM PKCS#8), inline (usually `${VAR}`) or from a file. Every event
 * the process publishes is signed with it.
 */
export const identitySchema = z
  .object({
    /** The agent the key belongs to. Default: the top-level `agent`. */
    agent: agentName.optional(),
    keyId,
    privateKey: z.string().min(1).optional(),
    privateKeyFile: z.string().min(1).optional(),
  })
  .strict()
  .superRefine(oneKeySource('privateKey', 'privateKeyFile', ' (e.g. "${SIGNING_KEY}")'));

export const trustedKeySchema = z
  .object({
    keyId,
    publicKey: z.string().min(1).optional(),
    publicKeyFile: z.string().min(1).optional(),
  })
  .strict()
  .superRefine(oneKeySource('publicKey', 'publicKeyFile', ''));

/**
 * Whose signatures consumers accept. Several keys for one agent are all valid at once (key rotation).
 * `enforce` defaults to true when `agents` is non-empty; with no `trust:` section nothing is verified.
 */
export const trustSchema = z
  .object({
    agents: z.record(agentName, z.array(trustedKeySchema).min(1, 'expected at least one key')).default({}),
    /** Producers whose unsigned events are still accepted while they migrate (agent names, or a non-agent source such as /cutover/shadow). */
    allowUnsigned: z.array(z.string().min(1)).default([]),
    /** Reject events that fail verification (true) or only count and log them (false). */
    enforce: z.boolean().optional(),
  })
  .strict()
  .transform((v) => ({ ...v, enforce: v.enforce ?? Object.keys(v.agents).length > 0 }));

export type IdentityConfig = z.infer<typeof identitySchema>;
export type TrustConfig = z.infer<typeof trustSchema>;
export type TrustConfigInput = z.input<typeof trustSchema>;

/** The config file keys of this section, spread into the top-level schema. */
export const identityConfigShape = {
  /** This process's signing key: every event it publishes is signed (docs/security.md, Agent identity). */
  identity: identitySchema.optional(),
  /** Public keys of the agents whose events this process acts on. */
  trust: trustSchema.optional(),
};
