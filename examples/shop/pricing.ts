import { euros, product } from './catalog.js';
import { createJsonServer, HttpError, listenAgent, readJson, type AgentHandle, type StartOptions } from './http.js';
import { discountPct, parseQuoteRequest, quoteId, type QuoteRequest } from './pricing-rules.js';

/**
 * The pricing agent: prices carts for the orders and recommendation agents.
 *
 * - `POST /quotes` `{ customerId, items: [{ sku, qty }] }` → 200 `{ quoteId, customerId, currency, lines:
 *   [{ sku, name, qty, listPrice, discountPct, unitPrice, lineTotal }], subtotal, total }`; 400 on a
 *   malformed request, 422 for an unknown SKU.
 * - `GET /prices/:sku` → 200 `{ sku, name, listPrice, currency }` or 404.
 *
 * Money is computed in cents; a discounted unit price is rounded half to even (banker's rounding), the
 * finance team's rule, so that rounding errors do not drift one way over many lines.
 */

/** `numerator / denominator` rounded to the nearest integer, ties to the even one. */
export function roundHalfEven(numerator: number, denominator: number): number {
  const quotient = Math.floor(numerator / denominator);
  const remainder = numerator - quotient * denominator;
  const twice = remainder * 2;
  if (twice < denominator) return quotient;
  if (twice > denominator) return quotient + 1;
  return quotient % 2 === 0 ? quotient : quotient + 1;
}

export interface QuoteLine {
  sku: string;
  name: string;
  qty: number;
  listPrice: number;
  discountPct: number;
  unitPrice: number;
  lineTotal: number;
}

export interface Quote {
  quoteId: string;
  customerId: string;
  currency: 'EUR';
  lines: QuoteLine[];
  subtotal: number;
  total: number;
}

/**
 * The quote for a parsed request. `roundUnit` turns a discounted unit price in hundredths of a cent into
 * cents: half to even here; the bus-native port passes its own (see bus-native/pricing.ts).
 */
export function buildQuote(request: QuoteRequest, roundUnit: (hundredthsOfCent: number) => number): Quote {
  let subtotal = 0;
  let total = 0;
  const lines = request.items.map((item): QuoteLine => {
    const p = product(item.sku)!;
    const pct = discountPct(request.customerId, p, item.qty);
    const unit = roundUnit(p.priceCents * (100 - pct));
    subtotal += p.priceCents * item.qty;
    total += unit * item.qty;
    return { sku: p.sku, name: p.name, qty: item.qty, listPrice: euros(p.priceCents), discountPct: pct, unitPrice: euros(unit), lineTotal: euros(unit * item.qty) };
  });
  return { quoteId: quoteId(request), customerId: request.customerId, currency: 'EUR', lines, subtotal: euros(subtotal), total: euros(total) };
}

export async function start(options: StartOptions = {}): Promise<AgentHandle> {
  const served = new Map<string, number>();
  const server = createJsonServer('pricing', [
    {
      method: 'POST',
      path: '/quotes',
      handle: async ({ req }) => {
        const parsed = parseQuoteRequest(await readJson(req));
        if (!parsed.ok) throw new HttpError(parsed.status, parsed.code, parsed.message);
        const quote = buildQuote(parsed.value, (cents) => roundHalfEven(cents, 100));
        return { status: 200, body: quote };
      },
    },
    {
      method: 'GET',
      path: '/prices/:sku',
      handle: ({ params }) => {
        const p = product(params.sku!);
        if (!p) throw new HttpError(404, 'UNKNOWN_SKU', `no product ${params.sku}`);
        return { status: 200, body: { sku: p.sku, name: p.name, listPrice: euros(p.priceCents), currency: 'EUR' } };
      },
    },
  ], served, options.logger);
  return listenAgent('pricing', server, served, options);
}
