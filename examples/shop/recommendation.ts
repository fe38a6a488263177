import http from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { CATALOG, customer } from './catalog.js';
import { HttpError, JsonClient, listenAgent, type AgentHandle, type StartOptions } from './http.js';
import type { Quote } from './pricing.js';
import { hash32 } from './random.js';

/**
 * The recommendation agent: what to show a customer on the home page.
 *
 * `GET /recommendations/:customerId?limit=4` → 200 `{ customerId, quoteId, items: [{ sku, name, price,
 * listPrice, discountPct, available }] }`: the customer's best-matching products (a stable ranking per
 * customer), those in stock (inventory `GET /stock/:sku`), priced for them (pricing `POST /quotes`).
 */

export interface RecommendationDeps {
  pricing: string;
  inventory: string;
}

/** Products in the order this customer is likely to want them: gold customers see brewing gear first. */
export function rank(customerId: string): string[] {
  const tier = customer(customerId).tier;
  const score = (sku: string, category: string): number => (hash32(`${customerId}:${sku}`) % 1000) + (tier === 'gold' && category === 'brewing' ? 400 : 0);
  return [...CATALOG].sort((a, b) => score(b.sku, b.category) - score(a.sku, a.category)).map((p) => p.sku);
}

export async function start(options: StartOptions<RecommendationDeps>): Promise<AgentHandle> {
  const deps = options.deps;
  if (!deps) throw new HttpError(500, 'MISCONFIGURED', 'recommendation needs deps { pricing, inventory }');
  const client = new JsonClient('recommendation');
  const served = new Map<string, number>();
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true, agent: 'recommendation' });
  });

  app.get('/recommendations/:customerId', (req, res, next) => {
    served.set('GET /recommendations/:customerId', (served.get('GET /recommendations/:customerId') ?? 0) + 1);
    recommend(req.params.customerId!, Number(req.query.limit ?? 4), String(req.headers['x-request-id'] ?? '')).then((body) => res.json(body), next);
  });

  app.use((req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.path}` } });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof HttpError) return void res.status(err.status).json({ error: { code: err.code, message: err.message } });
    options.logger?.error({ err, agent: 'recommendation' }, 'request failed');
    res.status(500).json({ error: { code: 'INTERNAL', message: 'recommendation failed to answer' } });
  });

  async function recommend(customerId: string, limit: number, requestId: string) {
    if (!Number.isInteger(limit) || limit < 1 || limit > 10) throw new HttpError(400, 'BAD_REQUEST', 'limit: expected 1..10');
    const headers: Record<string, string> = requestId ? { 'x-request-id': requestId } : {};
    const candidates = rank(customerId).slice(0, limit + 2);
    const stock = await Promise.all(candidates.map((sku) => client.get<{ available: number }>(`${deps!.inventory}/stock/${encodeURIComponent(sku)}`, headers)));
    const inStock = candidates.map((sku, i) => ({ sku, available: stock[i]!.status === 200 ? stock[i]!.body.available : 0 })).filter((c) => c.available > 0).slice(0, limit);
    if (inStock.length === 0) return { customerId, quoteId: null, items: [] };
    const quote = await client.post<Quote>(`${deps!.pricing}/quotes`, { customerId, items: inStock.map((c) => ({ sku: c.sku, qty: 1 })) }, headers);
    if (quote.status !== 200) throw new HttpError(502, 'DEPENDENCY_FAILED', `pricing answered ${quote.status}`);
    return {
      customerId,
      quoteId: quote.body.quoteId,
      items: quote.body.lines.map((l, i) => ({ sku: l.sku, name: l.name, price: l.unitPrice, listPrice: l.listPrice, discountPct: l.discountPct, available: inStock[i]!.available })),
    };
  }

  const server = http.createServer({ keepAliveTimeout: 65_000 }, app);
  const handle = await listenAgent('recommendation', server, served, options);
  return {
    ...handle,
    close: async () => {
      client.close();
      await handle.close();
    },
  };
}
