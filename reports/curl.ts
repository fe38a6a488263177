import type { CallSample } from '../src/parity/types.js';

/** Headers never worth repeating: credentials (should not be captured anyway) and what curl sets itself. */
const SKIP_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'host',
  'content-length',
  'connection',
  'transfer-encoding',
  'keep-alive',
  'upgrade',
  'te',
  'expect',
]);

/** RFC 9110 token: anything else in a header name is not a header (and `@` would make curl read a file). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = /^[A-Z]{1,16}$/;
// C0 controls, DEL and C1 controls: they would break the line or drive the terminal when pasted or printed.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Quotes one word for a POSIX shell. Plain single quotes when the text has no control characters (the
 * only character special inside them is `'` itself, written `'\''`). With control characters
 * (newlines, escape sequences) it uses `$'…'` quoting (POSIX.1-2024, bash, zsh, ksh) so the command
 * stays on one line and nothing reaches the terminal raw.
 */
export function shellQuote(value: string): string {
  if (value === '') return "''";
  if (/^[A-Za-z0-9_@%+:,./-]+$/.test(value)) return value;
  if (!CONTROL.test(value)) return `'${value.replace(/'/g, `'\\''`)}'`;
  let out = "$'";
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code >= 0x80 && code <= 0x9f) {
      // C1 controls as their UTF-8 bytes: \u escapes are not in POSIX $'…'.
      for (const byte of Buffer.from(ch, 'utf8')) out += `\\x${byte.toString(16).padStart(2, '0')}`;
    } else out += ch;
  }
  return `${out}'`;
}

export interface CurlResult {
  command: string;
  /** Why the command may not repeat the call exactly, or null. */
  note: string | null;
}

/**
 * A copy-paste `curl` that repeats a sampled call against `baseUrl` (by default the sidecar, so the call
 * is shadowed and compared again). Every word is shell-quoted; `--data-raw` (not `-d`/`--data-binary`)
 * so a body starting with `@` is sent, not read from a file; `-g` so `[]{}` in the URL are not globbed.
 */
export function buildCurl(request: CallSample, baseUrl: string): CurlResult {
  const notes: string[] = [];
  const method = typeof request.method === 'string' ? request.method.toUpperCase() : 'GET';
  const safeMethod = METHOD.test(method) ? method : 'GET';
  if (safeMethod !== method) notes.push(`method ${JSON.stringify(request.method)} is not a valid HTTP method; using GET`);
  let target = typeof request.target === 'string' ? request.target : '/';
  // A target is path+query; anything else (an absolute URL, `//host`) must not redirect the command elsewhere.
  if (!target.startsWith('/') || target.startsWith('//')) target = `/${target.replace(/^\/+/, '')}`;
  const url = baseUrl.replace(/\/+$/, '') + target;

  const words = ['curl', '-sS', '-g'];
  const hasBody = typeof request.body === 'string' && request.body.length > 0;
  if (safeMethod === 'HEAD') words.push('-I');
  else if (safeMethod !== 'GET' || hasBody) words.push('-X', safeMethod);
  words.push(shellQuote(url));
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (!TOKEN.test(name) || SKIP_HEADERS.has(name.toLowerCase()) || typeof value !== 'string') continue;
    // A line break inside a header value would smuggle a second header; curl refuses those anyway.
    const clean = value.replace(/[\r\n]+/g, ' ');
    words.push('-H', shellQuote(`${name}: ${clean}`));
  }
  if (hasBody) words.push('--data-raw', shellQuote(request.body!));
  if (request.bodyTruncated) notes.push('request body was truncated when captured');
  return { command: words.join(' '), note: notes.length > 0 ? notes.join('; ') : null };
}
