import { z } from 'zod';

/** Field types several config sections share, so each says the same thing the same way. */

/** `host:port`, or `[ipv6]:port` with the brackets a URL needs (`[::1]:15000`, `[::]:15000`). */
export const hostPort = z
  .string()
  .regex(/^(?:\[[\dA-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected host:port, like 127.0.0.1:15000 (an IPv6 address in brackets: [::1]:15000)');

export const httpUrl = z.string().url().regex(/^https?:\/\//, 'expected an http:// or https:// URL');

/** Adds `<path>[i].name: duplicate <what> name (also <path>[j])` for every repeated name. */
export function checkUniqueNames(items: ReadonlyArray<{ name: string }>, ctx: z.RefinementCtx, path: Array<string | number>, what: string): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const first = seen.get(item.name);
    if (first !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [...path, i, 'name'], message: `duplicate ${what} name (also ${path.length ? path.join('.') : what + 's'}[${first}])` });
    else seen.set(item.name, i);
  });
}
