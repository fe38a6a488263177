import { hash32 } from './random.js';

/**
 * The shop's reference data, shared by its agents the way a product database and a CRM would be:
 * the catalog (list prices in euro cents, weights, initial stock) and what the shop knows of a customer.
 */

export interface Product {
  sku: string;
  name: string;
  category: 'mugs' | 'tea' | 'brewing' | 'accessories';
  /** List price in euro cents: money is integers until it is shown. */
  priceCents: number;
  weightGrams: number;
  /** Units in the warehouse when the shop opens. */
  stock: number;
}

export const CATALOG: readonly Product[] = [
  { sku: 'SKU-RED-MUG', name: 'Red mug', category: 'mugs', priceCents: 1245, weightGrams: 350, stock: 100_000 },
  { sku: 'SKU-BLUE-MUG', name: 'Blue mug', category: 'mugs', priceCents: 1290, weightGrams: 350, stock: 100_000 },
  { sku: 'SKU-TRAVEL-MUG', name: 'Travel mug', category: 'mugs', priceCents: 2199, weightGrams: 420, stock: 100_000 },
  { sku: 'SKU-SENCHA', name: 'Sencha, 100 g', category: 'tea', priceCents: 875, weightGrams: 120, stock: 100_000 },
  { sku: 'SKU-ASSAM', name: 'Assam, 250 g', category: 'tea', priceCents: 780, weightGrams: 270, stock: 100_000 },
  { sku: 'SKU-EARL-GREY', name: 'Earl Grey, 100 g', category: 'tea', priceCents: 699, weightGrams: 120, stock: 100_000 },
  { sku: 'SKU-TEAPOT', name: 'Cast-iron teapot', category: 'brewing', priceCents: 3995, weightGrams: 1_600, stock: 100_000 },
  { sku: 'SKU-KETTLE', name: 'Gooseneck kettle', category: 'brewing', priceCents: 5490, weightGrams: 1_100, stock: 100_000 },
  { sku: 'SKU-GRINDER', name: 'Hand grinder', category: 'brewing', priceCents: 8900, weightGrams: 700, stock: 100_000 },
  { sku: 'SKU-FILTERS', name: 'Paper filters, 100', category: 'accessories', priceCents: 499, weightGrams: 150, stock: 100_000 },
  { sku: 'SKU-SCALE', name: 'Brewing scale', category: 'accessories', priceCents: 2499, weightGrams: 400, stock: 100_000 },
  { sku: 'SKU-TRAY', name: 'Bamboo tray', category: 'accessories', priceCents: 1635, weightGrams: 500, stock: 100_000 },
  { sku: 'SKU-CANISTER', name: 'Tea canister', category: 'accessories', priceCents: 1450, weightGrams: 300, stock: 100_000 },
  // The limited edition: it sells out during a demo run, so some reservations are refused.
  { sku: 'SKU-LIMITED-CUP', name: 'Limited edition cup', category: 'mugs', priceCents: 2990, weightGrams: 300, stock: 60 },
];

const BY_SKU = new Map(CATALOG.map((p) => [p.sku, p]));

export function product(sku: string): Product | undefined {
  return BY_SKU.get(sku);
}

/** Initial stock per SKU, a fresh map each call (every inventory instance owns its copy). */
export function initialStock(): Map<string, number> {
  return new Map(CATALOG.map((p) => [p.sku, p.stock]));
}

export type Tier = 'gold' | 'silver' | 'standard';

export interface Customer {
  id: string;
  tier: Tier;
  /** ISO 3166 country of the delivery address on file. */
  country: string;
  /** Customer for less than a month: fraud checks weigh that. */
  isNew: boolean;
}

const COUNTRIES = ['DE', 'DE', 'DE', 'FR', 'FR', 'NL', 'AT', 'IT', 'ES', 'PL', 'SE', 'US'] as const;

/** What the CRM knows of a customer; derived from the id so every agent agrees without a shared database. */
export function customer(id: string): Customer {
  const h = hash32(id);
  const tierRoll = h % 100;
  return {
    id,
    tier: tierRoll < 20 ? 'gold' : tierRoll < 50 ? 'silver' : 'standard',
    country: COUNTRIES[(h >>> 8) % COUNTRIES.length]!,
    isNew: (h >>> 16) % 10 === 0,
  };
}

/** Cents as a euro amount for JSON (`1120` → `11.2`). */
export function euros(cents: number): number {
  return cents / 100;
}
