import { z } from 'zod';
import { durationSchema } from '../duration.js';
import { checkUniqueNames } from './fields.js';
import { topicSchema } from './flow.js';

/** A reply status that counts as success: an exact status (`201`) or a class (`2xx`). */
const statusMatch = z.union([
  z.number().int('expected a whole number').min(100, 'expected an HTTP status 100-599').max(599, 'expected an HTTP status 100-599'),
  z.string().regex(/^[1-5]xx$/, 'expected a status class like 2xx'),
]);

/** `sagas[].steps[].retry`: how often a step's command is sent before the step counts as failed. */
export const sagaRetrySchema = z
  .object({
    /** Sends of the command in all (the first one included) on a timeout or an error reply. */
    attempts: z.number().int('expected a whole number').min(1, 'expected at least 1').max(100, 'expected at most 100').default(3),
    /** Wait before the next send; doubles at every attempt. */
    backoff: durationSchema.default('500ms'),
  })
  .strict();

const stepName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected lowercase letters, digits, _ or - (like reserve)');

/** One step of a saga: a command, what counts as its success, and how it is undone. */
export const sagaStepSchema = z
  .object({
    name: stepName,
    /** Topic the step's command is published on (`commands.agent.<agent>.<action>`). */
    command: topicSchema,
    /** Reply statuses that count as success; any other status is a refusal (no retry). Default `[2xx]`. */
    success: z
      .object({ status: z.array(statusMatch).min(1, 'expected at least one status').default(['2xx']) })
      .strict()
      .default({}),
    /** Topic of the command that undoes the step; none for a step with nothing to undo (a check). */
    compensation: topicSchema.optional(),
    /** How long one send waits for its reply. */
    timeout: durationSchema.default('10s'),
    retry: sagaRetrySchema.default({}),
  })
  .strict();

/** Top-level `sagas:` entry: a named operation spanning agents, driven by `cutover` over the bus. */
export const sagaSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected lowercase letters, digits, _ or - (like order)'),
    /** Where the saga's events (state, event-sourced) and its participants' replies go. Default `cutover.saga.<name>`. */
    topic: topicSchema.optional(),
    /** Consumer group of the orchestrator replicas. Default `cutover.saga.<name>`. */
    group: z.string().min(1).optional(),
    steps: z.array(sagaStepSchema).min(1, 'expected at least one step'),
    /**
     * The step after whose success the saga only goes forward: later steps are retried, never compensated
     * (a payment taken is followed by shipping, not refunded because shipping was slow). Default none.
     */
    pointOfNoReturn: stepName.optional(),
    /** How long a saga may wait past its deadline before another replica takes it over. */
    takeoverAfter: durationSchema.default('5s'),
  })
  .strict()
  .superRefine((saga, ctx) => {
    checkUniqueNames(saga.steps, ctx, ['steps'], 'step');
    if (saga.pointOfNoReturn !== undefined && !saga.steps.some((s) => s.name === saga.pointOfNoReturn)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['pointOfNoReturn'], message: `no step named ${JSON.stringify(saga.pointOfNoReturn)} under steps:` });
    }
  });

/** `sagas:`: names must be unique. */
export const sagasSchema = z.array(sagaSchema).superRefine((sagas, ctx) => checkUniqueNames(sagas, ctx, [], 'saga'));

export type SagaConfig = z.infer<typeof sagaSchema>;
export type SagaConfigInput = z.input<typeof sagaSchema>;
export type SagaStepConfig = z.infer<typeof sagaStepSchema>;
