/**
 * Partition of a key: FNV-1a over the UTF-16 code units, modulo the partition count. Every process
 * publishing to one topic must send a key to the same partition, so this must never change: existing
 * embedded files and Redis streams depend on it.
 */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}
