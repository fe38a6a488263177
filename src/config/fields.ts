import { z } from 'zod';

/** Field types several config sections share, so each says the same thing the same way. */

export const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, like 127.0.0.1:15000');

export const httpUrl = z.string().url().regex(/^https?:\/\//, 'expected an http:// or https:// URL');
