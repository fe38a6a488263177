import { CATALOG } from '../shop/catalog.js';
import { JsonClient } from '../shop/http.js';
import { seededRandom } from '../shop/random.js';

/** Customers' questions to customer service: a seeded plan, sent beside the storefront traffic. */

export interface Question {
  customerId: string;
  sku: string;
  text: string;
}

const TOPICS = ['Is it dishwasher safe?', 'When would it arrive?', 'Can I return it?', 'Is it back in stock soon?'];

/** `n` questions from `seed`: the same seed gives the same questions. */
export function planQuestions(seed: number, n: number, customers = 200): Question[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => ({
    customerId: `cus-${String(1 + Math.floor(random() * customers)).padStart(4, '0')}`,
    sku: CATALOG[Math.floor(random() * CATALOG.length)]!.sku,
    text: TOPICS[Math.floor(random() * TOPICS.length)]!,
  }));
}

/** Questions per run: a quarter of the shop requests, and at least 240 so every JSON-RPC flow has the demo's 200 samples with room to spare. */
export const questionsFor = (requests: number): number => Math.max(240, Math.round(requests / 4));

/** Sends `plan` to customer service, `concurrency` at a time; answers by status (`failed`: no answer). */
export async function askQuestions(url: string, plan: readonly Question[], concurrency: number, signal?: AbortSignal): Promise<Map<string, number>> {
  const client = new JsonClient('customers', { maxSockets: concurrency, timeoutMs: 30_000 });
  const statuses = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.length && !signal?.aborted) {
      const question = plan[next++]!;
      const label = await client.post(`${url}/questions`, question).then((r) => String(r.status), () => 'failed');
      statuses.set(label, (statuses.get(label) ?? 0) + 1);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, plan.length) }, worker));
  } finally {
    client.close();
  }
  return statuses;
}
