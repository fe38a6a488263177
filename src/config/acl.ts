import { z } from 'zod';
import { assertTopicName, assertTopicPattern } from '../bus/topics.js';
import { isCutoverError } from '../errors.js';

const agentName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a lowercase agent name like inventory');

/** A topic name or a `*` / `#` pattern, checked by the bus's own rules. */
const topicPattern = z.string().superRefine((value, ctx) => {
  try {
    assertTopicPattern(value, 'pattern');
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: isCutoverError(err) ? err.message.replace(/^pattern: /, '') : String(err) });
  }
});

const topicName = z.string().superRefine((value, ctx) => {
  try {
    assertTopicName(value, 'topic');
  } catch (err) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: isCutoverError(err) ? err.message.replace(/^topic: /, '') : String(err) });
  }
});

/** What one agent may do: the topics it publishes (commands it sends, facts it states) and consumes. */
export const aclAgentSchema = z
  .object({
    publish: z.array(topicPattern).default([]),
    consume: z.array(topicPattern).default([]),
  })
  .strict();

/**
 * Topic authorization: which identity (the agent a signature names) may publish on and consume which topics.
 * cutover's own topics are implied from the roles (docs/security.md, Topic authorization), never listed here.
 */
export const aclSchema = z
  .object({
    /** Per agent: `publish` and `consume` topic patterns (`*` one level, `#` the remaining levels). */
    agents: z.record(agentName, aclAgentSchema).default({}),
    /** Identities of shadow processes (`cutover shadow`, or a sidecar with `shadow.inProcess`): they consume every agent's published topics and write observations and parity. */
    shadow: z.array(agentName).default([]),
    /** Identities that write flips besides those under `agents` and `shadow` (people's CLI identities, `admin.operatorIdentity`). Default: `trust.operators`. */
    operators: z.array(agentName).optional(),
    /** Concrete topics that `*` patterns (and dead letters of wildcard patterns) are expanded against in `cutover acl`, besides the flows' topics. */
    topics: z.array(topicName).default([]),
    /** Refuse what the rules do not allow (true), or only log and count it (false). */
    enforce: z.boolean().default(true),
  })
  .strict();

export type AclConfig = z.infer<typeof aclSchema>;
export type AclConfigInput = z.input<typeof aclSchema>;

/** The config file keys of this section, spread into the top-level schema. */
export const aclConfigShape = {
  /** Topic authorization: who may publish and consume which topics (docs/security.md, Topic authorization). */
  acl: aclSchema.optional(),
};
