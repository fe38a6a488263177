import { createHash, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The inventory agent of the e-commerce demo: holds stock per SKU and takes reservations. A plain
 * node:http service, the kind of REST agent the sidecar stands in front of.
 *
 * - `POST /reservations` `{ sku, qty, customerId }` → 201 `{ reservationId, sku, qty, status, remaining }`,
 *   400 on a malformed body, 404 for an unknown SKU, 409 when stock is short. An `Idempotency-Key`
 *   header replays the first answer byte for byte (what callers retrying over a flaky network need).
 * - `GET /stock/:sku` → 200 `{ sku, available, reserved }` or 404.
 * - `DELETE /reservations/:id` → 200 `{ reservationId, status: "released" }` or 404.
 * - `GET /healthz` → 200.
 */
export interface InventoryAgent {
  url: string;
  port: number;
  /** Requests served, by `METHOD path-template`. */
  readonly served: Map<string, number>;
  close(): Promise<void>;
}

export interface InventoryOptions {
  port?: number;
  host?: string;
  /** Initial stock per SKU. */
  stock?: Record<string, number>;
}

const DEFAULT_STOCK: Record<string, number> = { 'SKU-RED-MUG': 1_000_000, 'SKU-BLUE-MUG': 1_000_000, 'SKU-TEAPOT': 50, 'SKU-KETTLE': 0 };

interface Reservation {
  reservationId: string;
  sku: string;
  qty: number;
  customerId: string;
  status: 'held' | 'released';
}

export async function start(options: InventoryOptions = {}): Promise<InventoryAgent> {
  const available = new Map(Object.entries(options.stock ?? DEFAULT_STOCK));
  const reserved = new Map<string, number>();
  const reservations = new Map<string, Reservation>();
  const replies = new Map<string, { status: number; body: string; headers: Record<string, string> }>();
  const served = new Map<string, number>();

  const send = (res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void => {
    const body = typeof value === 'string' ? value : JSON.stringify(value);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  };

  const count = (route: string): void => {
    served.set(route, (served.get(route) ?? 0) + 1);
  };

  const reserve = (raw: string): { status: number; body: unknown } => {
    let input: unknown;
    try {
      input = JSON.parse(raw);
    } catch {
      return { status: 400, body: { error: { code: 'BAD_JSON', message: 'body is not JSON' } } };
    }
    const { sku, qty, customerId } = (input ?? {}) as { sku?: unknown; qty?: unknown; customerId?: unknown };
    if (typeof sku !== 'string' || !Number.isInteger(qty) || (qty as number) <= 0) {
      return { status: 400, body: { error: { code: 'BAD_REQUEST', message: 'expected { sku: string, qty: positive integer }' } } };
    }
    const have = available.get(sku);
    if (have === undefined) return { status: 404, body: { error: { code: 'UNKNOWN_SKU', message: `no SKU ${sku}` } } };
    if (have < (qty as number)) return { status: 409, body: { error: { code: 'OUT_OF_STOCK', message: `only ${have} left`, available: have } } };
    available.set(sku, have - (qty as number));
    reserved.set(sku, (reserved.get(sku) ?? 0) + (qty as number));
    const reservation: Reservation = { reservationId: `res_${randomUUID()}`, sku, qty: qty as number, customerId: typeof customerId === 'string' ? customerId : 'anonymous', status: 'held' };
    reservations.set(reservation.reservationId, reservation);
    return { status: 201, body: { ...reservation, remaining: have - (qty as number) } };
  };

  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const [path] = (req.url ?? '/').split('?') as [string];
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'POST' && path === '/reservations') {
        count('POST /reservations');
        const key = req.headers['idempotency-key'];
        const scope = typeof key === 'string' ? createHash('sha256').update(key).digest('hex') : undefined;
        const earlier = scope ? replies.get(scope) : undefined;
        if (earlier) return send(res, earlier.status, earlier.body, earlier.headers);
        const { status, body } = reserve(raw);
        const text = JSON.stringify(body);
        const headers: Record<string, string> = status === 201 ? { location: `/reservations/${(body as Reservation).reservationId}` } : {};
        if (scope) replies.set(scope, { status, body: text, headers });
        return send(res, status, text, headers);
      }
      const stock = /^\/stock\/([^/]+)$/.exec(path);
      if (req.method === 'GET' && stock) {
        count('GET /stock/:sku');
        const sku = decodeURIComponent(stock[1]!);
        const have = available.get(sku);
        if (have === undefined) return send(res, 404, { error: { code: 'UNKNOWN_SKU', message: `no SKU ${sku}` } });
        return send(res, 200, { sku, available: have, reserved: reserved.get(sku) ?? 0 });
      }
      const release = /^\/reservations\/([^/]+)$/.exec(path);
      if (req.method === 'DELETE' && release) {
        count('DELETE /reservations/:id');
        const r = reservations.get(decodeURIComponent(release[1]!));
        if (!r) return send(res, 404, { error: { code: 'UNKNOWN_RESERVATION', message: 'no such reservation' } });
        if (r.status === 'held') {
          r.status = 'released';
          available.set(r.sku, (available.get(r.sku) ?? 0) + r.qty);
          reserved.set(r.sku, (reserved.get(r.sku) ?? 0) - r.qty);
        }
        return send(res, 200, { reservationId: r.reservationId, status: r.status });
      }
      if (req.method === 'GET' && path === '/healthz') return send(res, 200, { ok: true });
      count('other');
      send(res, 404, { error: { code: 'NOT_FOUND', message: `${req.method} ${path}` } });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// `npx tsx examples/agents/inventory.ts [port]` runs it on its own.
if (import.meta.url === `file://${process.argv[1]}`) {
  const agent = await start({ port: Number(process.argv[2] ?? 8081) });
  process.stdout.write(`inventory agent on ${agent.url}\n`);
}
