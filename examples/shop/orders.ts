import http from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { customer } from './catalog.js';
import { runCheckout } from './checkout.js';
import type { Assessment } from './fraud-rules.js';
import { HttpError, JsonClient, listenAgent, type AgentHandle, type JsonResponse, type StartOptions } from './http.js';
import type { Reservation } from './inventory-rules.js';
import type { Shipment } from './logistics.js';
import type { Quote } from './pricing.js';

/**
 * The orders agent, the shop's checkout: it turns a cart into an order by calling four other agents.
 *
 * `POST /orders` `{ cartId, customerId, items: [{ sku, qty }], shipTo: { country, postcode } }`:
 * 1. prices the cart (pricing `POST /quotes`);
 * 2. reserves each line (inventory `POST /reservations`); a line out of stock is backordered;
 * 3. has the order checked (fraud `POST /checks`) over the lines it holds;
 * 4. books the parcel (logistics `POST /shipments`) when fraud approves.
 *
 * Answers 201 `{ orderId, status: confirmed|on_hold, ... }`, 409 when no line is in stock, 422 when fraud
 * rejects it, 400 on a malformed cart, 502 when an agent it needs fails. `GET /orders/:id` returns an order.
 *
 * `POST /checkout` (a checkout, see checkout-rules.ts) runs the checkout chain of checkout.ts through
 * inventory, fraud, payments and logistics, apart from the orders above.
 */

export interface OrdersDeps {
  pricing: string;
  inventory: string;
  fraud: string;
  logistics: string;
  /** Only the checkout chain calls payments. */
  payments: string;
}

interface OrderLine {
  sku: string;
  qty: number;
  unitPrice: number;
  lineTotal: number;
  status: 'held' | 'backordered';
}

export interface Order {
  orderId: string;
  customerId: string;
  status: 'confirmed' | 'on_hold' | 'rejected';
  currency: 'EUR';
  lines: OrderLine[];
  total: number;
  fraud: { decision: Assessment['decision']; score: number };
  shipment: { shipmentId: string; carrier: string; etaDays: number; cost: number } | null;
}

function expect<T>(what: string, res: JsonResponse<T>, ok: number[]): T {
  if (ok.includes(res.status)) return res.body;
  const error = (res.body as { error?: { code?: string; message?: string } } | undefined)?.error;
  if (res.status >= 400 && res.status < 500 && res.status !== 404) throw new HttpError(res.status, error?.code ?? 'REJECTED', `${what}: ${error?.message ?? `status ${res.status}`}`);
  throw new HttpError(502, 'DEPENDENCY_FAILED', `${what} answered ${res.status}${error?.code ? ` ${error.code}` : ''}`);
}

export async function start(options: StartOptions<OrdersDeps>): Promise<AgentHandle> {
  const deps = options.deps;
  if (!deps) throw new HttpError(500, 'MISCONFIGURED', 'orders needs deps { pricing, inventory, fraud, logistics, payments }');
  const client = new JsonClient('orders');
  const orders = new Map<string, Order>();
  const served = new Map<string, number>();
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '256kb' }));
  app.use((req, _res, next) => {
    const route = req.method === 'GET' && req.path.startsWith('/orders/') ? 'GET /orders/:id' : `${req.method} ${req.path}`;
    served.set(route, (served.get(route) ?? 0) + 1);
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, agent: 'orders' });
  });

  app.post('/orders', (req, res, next) => {
    placeOrder(req.body, String(req.headers['x-request-id'] ?? '')).then((result) => res.status(result.status).json(result.body), next);
  });

  app.post('/checkout', (req, res, next) => {
    const requestId = String(req.headers['x-request-id'] ?? '');
    runCheckout(client, deps, req.body, requestId ? { 'x-request-id': requestId } : {}).then((result) => res.status(result.status).json(result.body), next);
  });

  app.get('/orders/:id', (req, res) => {
    const order = orders.get(req.params.id!);
    if (!order) return void res.status(404).json({ error: { code: 'UNKNOWN_ORDER', message: `no order ${req.params.id}` } });
    res.json(order);
  });

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.path}` } });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof HttpError) return void res.status(err.status).json({ error: { code: err.code, message: err.message, ...err.extra } });
    // express.json's own errors carry a status (400 malformed, 413 too large).
    const status = (err as { status?: number }).status;
    if (status && status < 500) return void res.status(status).json({ error: { code: 'BAD_REQUEST', message: (err as Error).message } });
    options.logger?.error({ err, agent: 'orders' }, 'request failed');
    res.status(500).json({ error: { code: 'INTERNAL', message: 'orders failed to answer' } });
  });

  async function placeOrder(input: unknown, requestId: string): Promise<{ status: number; body: unknown }> {
    const cart = (input ?? {}) as { cartId?: unknown; customerId?: unknown; items?: unknown; shipTo?: { country?: unknown; postcode?: unknown } };
    if (typeof cart.cartId !== 'string' || !/^[A-Za-z0-9-]{1,40}$/.test(cart.cartId)) throw new HttpError(400, 'BAD_REQUEST', 'cartId: expected 1-40 letters, digits or -');
    if (typeof cart.customerId !== 'string') throw new HttpError(400, 'BAD_REQUEST', 'customerId: expected a string');
    if (!Array.isArray(cart.items) || cart.items.length === 0) throw new HttpError(400, 'BAD_REQUEST', 'items: expected at least one item');
    const shipTo = { country: String(cart.shipTo?.country ?? customer(cart.customerId).country), postcode: String(cart.shipTo?.postcode ?? '00000') };
    const orderId = `ord-${cart.cartId}`;
    const earlier = orders.get(orderId);
    if (earlier) return { status: 200, body: earlier };
    const headers: Record<string, string> = requestId ? { 'x-request-id': requestId } : {};

    const quote = expect('pricing', await client.post<Quote>(`${deps!.pricing}/quotes`, { customerId: cart.customerId, items: cart.items }, headers), [200]);

    // One line at a time: a cart's lines are few, and a partial order needs to know what it holds.
    const lines: OrderLine[] = [];
    for (const line of quote.lines) {
      const res = await client.post<Reservation>(`${deps!.inventory}/reservations`, { orderId, sku: line.sku, qty: line.qty }, headers);
      let status: OrderLine['status'] = 'backordered';
      if (res.status !== 409) {
        expect('inventory', res, [200, 201]);
        status = 'held';
      }
      lines.push({ sku: line.sku, qty: line.qty, unitPrice: line.unitPrice, lineTotal: line.lineTotal, status });
    }
    const held = lines.filter((l) => l.status === 'held');
    if (held.length === 0) throw new HttpError(409, 'OUT_OF_STOCK', 'no line of the cart is in stock', { lines });
    const totalCents = held.reduce((sum, l) => sum + Math.round(l.lineTotal * 100), 0);

    const check = expect(
      'fraud',
      await client.post<Assessment>(`${deps!.fraud}/checks`, { orderId, customerId: cart.customerId, amount: totalCents / 100, shipTo: shipTo.country, itemCount: held.reduce((n, l) => n + l.qty, 0) }, headers),
      [200],
    );
    const order: Order = {
      orderId,
      customerId: cart.customerId,
      status: check.decision === 'approve' ? 'confirmed' : check.decision === 'review' ? 'on_hold' : 'rejected',
      currency: 'EUR',
      lines,
      total: totalCents / 100,
      fraud: { decision: check.decision, score: check.score },
      shipment: null,
    };
    if (check.decision === 'approve') {
      const s = expect('logistics', await client.post<Shipment>(`${deps!.logistics}/shipments`, { orderId, shipTo, items: held.map((l) => ({ sku: l.sku, qty: l.qty })) }, headers), [201]);
      order.shipment = { shipmentId: s.shipmentId, carrier: s.carrier, etaDays: s.etaDays, cost: s.cost };
    }
    // Rejected orders keep their reservations until the fraud team has looked (a real shop releases them later).
    orders.set(orderId, order);
    return { status: order.status === 'rejected' ? 422 : 201, body: order };
  }

  const server = http.createServer({ keepAliveTimeout: 65_000 }, app);
  const handle = await listenAgent('orders', server, served, options);
  return {
    ...handle,
    close: async () => {
      client.close();
      await handle.close();
    },
  };
}
