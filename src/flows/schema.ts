import { z } from 'zod';
import { conventionProblem } from '../bus/topics.js';

/** A flow's mode. Kept a first-class value: canary and bus arrive with flips. */
export const FLOW_MODES = ['direct', 'shadow'] as const;
export const flowModeSchema = z.enum(FLOW_MODES, { errorMap: () => ({ message: `expected one of ${FLOW_MODES.join(', ')}` }) });
export type FlowMode = z.infer<typeof flowModeSchema>;

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const topicSchema = z.string().superRefine((topic, ctx) => {
  const problem = conventionProblem(topic);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
});

export const flowSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'expected lowercase letters, digits, dots, _ or - (like inventory.reserve)'),
    match: z
      .object({
        method: z.preprocess((m) => (typeof m === 'string' ? m.toUpperCase() : m), z.enum(HTTP_METHODS)),
        path: z.string().regex(/^\/[^\s?#]*$/, 'expected a path starting with / (templates like /stock/:sku allowed, no query)'),
      })
      .strict(),
    topic: topicSchema,
    key: z
      .string()
      .regex(/^(body|path|query|header)\.[A-Za-z0-9_.-]+$/, 'expected body.<field>, path.<param>, query.<name> or header.<name>')
      .optional(),
    schemaVersion: z.string().regex(/^\d+(\.\d+){0,2}$/, 'expected a version like 1, 1.2 or 1.2.3').default('1'),
    mode: flowModeSchema.default('direct'),
  })
  .strict();

export type FlowConfig = z.infer<typeof flowSchema>;
