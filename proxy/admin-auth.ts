import { createHash, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { AdminScope } from '../src/config/schema.js';

/** A bearer token and what it may do. */
export interface AdminToken {
  token: string;
  scopes: readonly AdminScope[];
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The admin API's tokens. A presented token is compared with every configured one, each through a digest
 * of equal length and `timingSafeEqual`, with no early exit: the answer time says neither how much of a
 * token matched nor which entry did.
 */
export class AdminTokens {
  private readonly entries: ReadonlyArray<{ digest: Buffer; scopes: ReadonlySet<AdminScope> }>;

  constructor(tokens: readonly AdminToken[]) {
    this.entries = tokens.map((t) => ({ digest: digest(t.token), scopes: new Set(t.scopes) }));
  }

  get size(): number {
    return this.entries.length;
  }

  /** The scopes of `presented`, or undefined when it is no configured token. */
  scopesOf(presented: string): ReadonlySet<AdminScope> | undefined {
    const d = digest(presented);
    // A token listed twice has the scopes of all its entries.
    let found: Set<AdminScope> | undefined;
    for (const entry of this.entries) {
      if (!timingSafeEqual(d, entry.digest)) continue;
      found ??= new Set();
      for (const scope of entry.scopes) found.add(scope);
    }
    return found;
  }
}

/** A client certificate subject CN and what its holder may do (`admin.clientCerts`). */
export interface AdminClientCert {
  cn: string;
  scopes: readonly AdminScope[];
}

/**
 * Client certificates that stand for a token. A certificate counts only when the TLS layer verified it
 * against the admin listener's client CA (`socket.authorized`): an unverified one, even with a listed CN,
 * is no credential. Its subject CN must equal a configured `cn` exactly (case and all); a certificate with
 * several CNs matches none, as it is ambiguous which one the CA vouched for.
 */
export class AdminClientCerts {
  private readonly scopes = new Map<string, Set<AdminScope>>();

  constructor(certs: readonly AdminClientCert[]) {
    for (const c of certs) {
      const set = this.scopes.get(c.cn) ?? new Set<AdminScope>();
      for (const scope of c.scopes) set.add(scope);
      this.scopes.set(c.cn, set);
    }
  }

  get size(): number {
    return this.scopes.size;
  }

  /** The scopes of the verified client certificate on `socket`, or undefined (no TLS, no or unverified certificate, unlisted CN). */
  scopesOf(socket: TLSSocket): ReadonlySet<AdminScope> | undefined {
    if (this.scopes.size === 0 || !socket.encrypted || !socket.authorized) return undefined;
    const cn = socket.getPeerCertificate()?.subject?.CN as unknown;
    return typeof cn === 'string' ? this.scopes.get(cn) : undefined;
  }
}

export interface FailureLimitOptions {
  /** Failures allowed per client address within `windowMs`; the next one, and every request after, gets 429. */
  limit: number;
  windowMs?: number;
  /** Addresses tracked at most; the one seen least recently is forgotten first. */
  maxClients?: number;
  now?: () => number;
}

/**
 * Failed authentications per client address in a sliding window. The address is the socket's, never a
 * forwarded-for header a client could write. Bounded in memory, so a flood of addresses cannot grow it.
 */
export class FailureLimit {
  private readonly failures = new Map<string, number[]>();
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(options: FailureLimitOptions) {
    this.limit = options.limit;
    this.windowMs = options.windowMs ?? 60_000;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Seconds until `client` may try again, or 0 when it is not over the limit. */
  retryAfter(client: string): number {
    const times = this.recent(client);
    if (times.length <= this.limit) return 0;
    return Math.max(1, Math.ceil((times[times.length - this.limit - 1]! + this.windowMs - this.now()) / 1000));
  }

  /** Records a failure; returns {@link retryAfter} after it. */
  fail(client: string): number {
    const times = this.recent(client);
    times.push(this.now());
    // Only the last limit+1 failures decide anything.
    if (times.length > this.limit + 1) times.splice(0, times.length - this.limit - 1);
    this.failures.delete(client);
    this.failures.set(client, times);
    if (this.failures.size > this.maxClients) this.failures.delete(this.failures.keys().next().value!);
    return this.retryAfter(client);
  }

  private recent(client: string): number[] {
    const times = this.failures.get(client);
    if (!times) return [];
    const cutoff = this.now() - this.windowMs;
    while (times.length > 0 && times[0]! <= cutoff) times.shift();
    if (times.length === 0) this.failures.delete(client);
    return times;
  }
}
