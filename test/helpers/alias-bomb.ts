/**
 * YAML lines (indented for a mapping under one key) of a "billion laughs" document: each level is nine
 * aliases of the one before, so `depth` levels expand to 9^depth strings.
 */
export function aliasBomb(depth = 9): string {
  const names = Array.from({ length: depth }, (_, i) => `l${i}`);
  return names.map((name, i) => `  ${name}: &${name} [${Array(9).fill(i === 0 ? 'lol' : `*${names[i - 1]}`).join(', ')}]`).join('\n');
}
