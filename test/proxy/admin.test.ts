import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createAdminServer, type AdminOptions } from '../../proxy/admin.js';
import { AdminTokens, FailureLimit } from '../../proxy/admin-auth.js';
import { cutoverConfigSchema } from '../../src/config/schema.js';
import { ErrorCodes } from '../../src/errors.js';
import { adminFixture } from '../helpers/admin-server.js';

const READ = 'read-only-token-0123456789';
const OPERATOR = 'operator-token-0123456789';
const LEGACY = 'single-admin-token-0123456789';

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function admin(overrides: Partial<AdminOptions> = {}): Promise<{ url: string; flips: string[] }> {
  const { options, flips } = adminFixture({
    token: LEGACY,
    tokens: [
      { token: READ, scopes: ['read'] },
      { token: OPERATOR, scopes: ['read', 'flip'] },
    ],
    ...overrides,
  });
  const server = createAdminServer(options);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, flips };
}

const as = (token: string, init: RequestInit = {}): RequestInit => ({ ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } });
const flip = (token: string): RequestInit => as(token, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: 'shadow' }) });

describe('admin API scopes', () => {
  it('a read-only token reads the report and status but gets 403 on flip; an operator token and the single admin.token flip', async () => {
    const { url, flips } = await admin();
    for (const p of ['/report', '/readyz', '/flows', '/healthz', '/metrics', '/flows/x/history']) expect((await fetch(`${url}${p}`, as(READ))).status, p).toBe(200);
    const denied = await fetch(`${url}/flows/inventory.reserve/flip`, flip(READ));
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ error: { code: ErrorCodes.AUTH_FORBIDDEN, message: expect.stringContaining('flip scope') } });
    expect(flips).toEqual([]);
    expect((await fetch(`${url}/flows/inventory.reserve/flip`, flip(OPERATOR))).status).toBe(200);
    expect((await fetch(`${url}/flows/inventory.reserve/flip`, flip(LEGACY))).status).toBe(200);
    expect(flips).toEqual(['inventory.reserve->shadow', 'inventory.reserve->shadow']);
  });

  it('repeated bad tokens get 429 with Retry-After, the good token included, until the window passes', async () => {
    let now = 1_000_000;
    const { url } = await admin({ now: () => now });
    for (let i = 0; i < 10; i++) expect((await fetch(`${url}/flows`, as(`wrong-token-${i}-0123456789`))).status).toBe(401);
    const limited = await fetch(`${url}/flows`, as('wrong-token-x-0123456789'));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await limited.json()).toMatchObject({ error: { code: ErrorCodes.AUTH_RATE_LIMITED } });
    expect((await fetch(`${url}/flows`, as(OPERATOR))).status).toBe(429);
    expect((await fetch(`${url}/flows`)).status).toBe(429);
    now += 61_000;
    expect((await fetch(`${url}/flows`, as(OPERATOR))).status).toBe(200);
  });
});

describe('admin auth parts', () => {
  it('finds each token\'s scopes and nothing for a prefix, a longer string or an empty token', () => {
    const tokens = new AdminTokens([{ token: READ, scopes: ['read'] }, { token: OPERATOR, scopes: ['read', 'flip'] }]);
    expect([...tokens.scopesOf(READ)!]).toEqual(['read']);
    expect([...tokens.scopesOf(OPERATOR)!]).toEqual(['read', 'flip']);
    for (const bad of [READ.slice(0, -1), `${READ}x`, '', READ.toUpperCase()]) expect(tokens.scopesOf(bad)).toBeUndefined();
    expect([...new AdminTokens([{ token: READ, scopes: ['read'] }, { token: READ, scopes: ['flip'] }]).scopesOf(READ)!]).toEqual(['read', 'flip']);
  });

  it('counts failures per address in a sliding window and forgets the oldest address past its bound', () => {
    let now = 0;
    const limit = new FailureLimit({ limit: 2, windowMs: 10_000, maxClients: 2, now: () => now });
    expect(limit.fail('a')).toBe(0);
    now = 4_000;
    expect(limit.fail('a')).toBe(0);
    expect(limit.fail('a')).toBe(6);
    expect(limit.retryAfter('b')).toBe(0);
    now = 10_001;
    expect(limit.retryAfter('a')).toBe(0);
    limit.fail('b');
    limit.fail('c');
    limit.fail('d');
    expect(limit.retryAfter('a')).toBe(0);
  });

  it('validates admin.tokens: scopes and length; tokens alone satisfy auth', () => {
    const parse = (admin: unknown) => cutoverConfigSchema.safeParse({ agent: 'inventory', admin });
    expect(parse({ tokens: [{ token: READ, scopes: ['read'] }] }).success).toBe(true);
    const bad = parse({ token: OPERATOR, tokens: [{ token: 'short', scopes: ['read'] }, { token: READ, scopes: [] }, { token: READ, scopes: ['write'] }, { token: OPERATOR, scopes: ['read'] }] });
    expect(bad.success).toBe(false);
    const text = JSON.stringify(bad.error!.issues.map((i) => [i.path.join('.'), i.message]));
    expect(text).toContain('admin.tokens.0.token');
    expect(text).toContain('admin.tokens.1.scopes');
    expect(text).toContain('admin.tokens.2.scopes.0');
    expect(parse({}).success).toBe(false);
  });
});
