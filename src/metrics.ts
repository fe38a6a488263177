import { Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per process part, so tests and embedded uses never collide on the global one. */
export function createRegistry(options: { defaultMetrics?: boolean; prefix?: string } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: options.prefix ?? 'cutover_' });
  return registry;
}

export { Registry };
