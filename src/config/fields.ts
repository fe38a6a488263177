import { z } from 'zod';

/** Field types several config sections share, so each says the same thing the same way. */

/** `host:port`, or `[ipv6]:port` with the brackets a URL needs (`[::1]:15000`, `[::]:15000`). */
export const hostPort = z
  .string()
  .regex(/^(?:\[[\dA-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected host:port, like 127.0.0.1:15000 (an IPv6 address in brackets: [::1]:15000)');

export const httpUrl = z.string().url().regex(/^https?:\/\//, 'expected an http:// or https:// URL');
