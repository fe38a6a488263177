import { z } from 'zod';
import { cutoverConfigSchema } from '../src/config/schema.js';

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

/** `127.0.0.1:15000` / `[::1]:15000` / `localhost:0` → host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(i + 1)) };
}
