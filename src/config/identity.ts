import { z } from 'zod';

const agentName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a lowercase agent name like inventory');
const keyId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected a key id of letters, digits, dot, dash or underscore (at most 64)');

/** A key given inline or as a file: exactly one of the two, reported on the inline key's path. */
function oneKeySource(inline: string, file: string, example: string) {
  return (v: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    if ((v[inline] === undefined) === (v[file] === undefined)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [inline], message: `set exactly one of ${inline}${example} and ${file}` });
  };
}

/** A private signing key (Ed25519, PEM PKCS#8) inline (usually `${VAR}`) or from a file, for `agent`. */
function privateKeySchema<A extends z.ZodTypeAny>(agent: A, example: string) {
  return z
    .object({ agent, keyId, privateKey: z.string().min(1).optional(), privateKeyFile: z.string().min(1).optional() })
    .strict()
    .superRefine(oneKeySource('privateKey', 'privateKeyFile', ` (e.g. "${example}")`));
}

/**
 * This process's signing key. Every event the process publishes is signed with it. `agent`: the agent the
 * key belongs to, by default the top-level `agent`.
 */
export const identitySchema = privateKeySchema(agentName.optional(), '${SIGNING_KEY}');

export const trustedKeySchema = z
  .object({
    keyId,
    publicKey: z.string().min(1).optional(),
    publicKeyFile: z.string().min(1).optional(),
  })
  .strict()
  .superRefine(oneKeySource('publicKey', 'publicKeyFile', ''));

/**
 * A key that signs flips as an operator (`admin.operatorIdentity`): like `identity:`, but the agent (the
 * operator, as listed in `trust.operators` with its public key in `trust.agents`) is always named, since an
 * operator is a person or a release tool, not the agent the process stands for.
 */
export const operatorIdentitySchema = privateKeySchema(agentName, '${OPERATOR_SIGNING_KEY}');

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
    /**
     * The identities (listed in `agents`) whose signed flips followers apply. Any other trusted agent may
     * only write automatic rollbacks away from the bus. Absent: every trusted agent may flip.
     */
    operators: z.array(agentName).min(1, 'expected at least one operator (or leave operators out)').optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    v.operators?.forEach((name, i) => {
      if (!Object.hasOwn(v.agents, name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['operators', i], message: `operator ${JSON.stringify(name)} is not in trust.agents: list its public key there` });
    });
  })
  .transform((v) => ({ ...v, enforce: v.enforce ?? Object.keys(v.agents).length > 0 }));

export type IdentityConfig = z.infer<typeof identitySchema>;
export type OperatorIdentityConfig = z.infer<typeof operatorIdentitySchema>;
export type TrustConfig = z.infer<typeof trustSchema>;
export type TrustConfigInput = z.input<typeof trustSchema>;

/** The config file keys of this section, spread into the top-level schema. */
export const identityConfigShape = {
  /** This process's signing key: every event it publishes is signed (docs/security.md, Agent identity). */
  identity: identitySchema.optional(),
  /** Public keys of the agents whose events this process acts on. */
  trust: trustSchema.optional(),
};
