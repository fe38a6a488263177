import { customer } from './catalog.js';
import { hash32 } from './random.js';

/**
 * The fraud model, shared by the REST fraud agent and its bus-native port: a rule score from the order and
 * what the CRM knows of the customer. Deterministic, so both answer alike for the same order.
 */

export interface CheckRequest {
  orderId: string;
  customerId: string;
  /** Order total in euros. */
  amount: number;
  /** Country the order ships to. */
  shipTo: string;
  itemCount: number;
}

export type Decision = 'approve' | 'review' | 'reject';

export interface Assessment {
  orderId: string;
  decision: Decision;
  /** 0 (clean) to 100. */
  score: number;
  reasons: string[];
  modelVersion: string;
}

export const MODEL_VERSION = 'rules-2024.06';

export function parseCheck(input: unknown): { ok: true; value: CheckRequest } | { ok: false; message: string } {
  const b = (input ?? {}) as Record<string, unknown>;
  if (typeof b.orderId !== 'string' || typeof b.customerId !== 'string') return { ok: false, message: 'orderId and customerId: expected strings' };
  if (typeof b.amount !== 'number' || !Number.isFinite(b.amount) || b.amount < 0) return { ok: false, message: 'amount: expected a non-negative number' };
  if (typeof b.shipTo !== 'string' || !/^[A-Z]{2}$/.test(b.shipTo)) return { ok: false, message: 'shipTo: expected an ISO country code like DE' };
  if (!Number.isInteger(b.itemCount) || (b.itemCount as number) < 1) return { ok: false, message: 'itemCount: expected a positive integer' };
  return { ok: true, value: { orderId: b.orderId, customerId: b.customerId, amount: b.amount, shipTo: b.shipTo, itemCount: b.itemCount as number } };
}

export function assess(check: CheckRequest): Assessment {
  const who = customer(check.customerId);
  const reasons: string[] = [];
  let score = 5;
  if (check.amount > 500) {
    score += 35;
    reasons.push('amount_very_high');
  } else if (check.amount > 200) {
    score += 20;
    reasons.push('amount_high');
  }
  if (who.isNew) {
    score += 25;
    reasons.push('new_customer');
  }
  if (check.shipTo !== who.country) {
    score += 15;
    reasons.push('ships_abroad');
  }
  if (check.itemCount >= 8) {
    score += 10;
    reasons.push('bulk_order');
  }
  // Behavioural signals (device, velocity) a real model would add; stable per order here.
  score += hash32(`signals:${check.orderId}`) % 20;
  score = Math.min(100, score);
  const decision: Decision = score >= 70 ? 'reject' : score >= 50 ? 'review' : 'approve';
  return { orderId: check.orderId, decision, score, reasons, modelVersion: MODEL_VERSION };
}
