/**
 * Deterministic randomness for the shop: the same seed gives the same customers, carts and decisions,
 * so two runs of the demo send the same traffic and the agents give the same answers.
 */

/** A seeded generator of floats in [0, 1) (mulberry32: tiny, fast, good enough for traffic). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** FNV-1a of a string: a stable 32-bit number per entity (customer, order), the same in every process. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A stable fraction in [0, 1) for `text`. */
export function unitHash(text: string): number {
  return hash32(text) / 4_294_967_296;
}

/** Picks from `items` by weight with `random` (weights need not sum to 1). */
export function pickWeighted<T>(random: () => number, items: ReadonlyArray<{ value: T; weight: number }>): T {
  const total = items.reduce((sum, i) => sum + i.weight, 0);
  let x = random() * total;
  for (const item of items) {
    x -= item.weight;
    if (x < 0) return item.value;
  }
  return items[items.length - 1]!.value;
}
