import { Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per process part, so tests and embedded uses never collide on the global one. */
export function createRegistry(options: { defaultMetrics?: boolean; prefix?: string } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: options.prefix ?? 'cutover_' });
  return registry;
}

export { Registry };

/** A value of a metric as prom-client's registry formats it. */
interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  /** The line's name when it is not the metric's (a histogram's `_bucket`, `_sum`, `_count`). */
  metricName?: string;
}

interface MetricConfig<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: readonly Registry[];
}

/** What the resolved metrics share: registration, and a series per label set made on first use. */
abstract class ResolvedMetric<L extends string, S> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum';
  protected readonly series_ = new Map<string, S>();
  private readonly labelNames: readonly string[];

  constructor(config: MetricConfig<L>) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    for (const registry of config.registers) registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected resolve(values: string[], make: (labels: Record<string, string>) => S): S {
    if (values.length !== this.labelNames.length) throw new TypeError(`${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`);
    const key = values.join('\u0000');
    let s = this.series_.get(key);
    if (!s) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]!));
      s = make(labels);
      this.series_.set(key, s);
    }
    return s;
  }
}

interface HistogramSeries {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/** What one label set of a {@link ResolvedHistogram} records into. */
export interface HistogramObserver {
  observe(value: number): void;
}

/**
 * A histogram whose label sets are resolved once, for the per-request path. prom-client's labelled
 * `observe` validates and hashes the label set on every call (about 1 µs, measured), and a proxied request
 * records two latencies; `series(...)` here returns an observer that only finds the bucket and counts.
 * Registered on a prom-client registry and exposed in the same text and JSON as prom-client's Histogram
 * (same names, labels, `le` values and order), so scrapers and dashboards see no difference.
 */
export class ResolvedHistogram<L extends string> extends ResolvedMetric<L, HistogramSeries> {
  readonly type = 'histogram';
  private readonly bounds: readonly number[];

  constructor(config: MetricConfig<L> & { buckets: readonly number[] }) {
    super(config);
    this.bounds = [...config.buckets].sort((a, b) => a - b);
  }

  /** The observer of one label set, values in `labelNames` order. */
  series(...values: string[]): HistogramObserver {
    const series = this.resolve(values, (labels) => ({ labels, counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 }));
    const bounds = this.bounds;
    return {
      observe(value: number): void {
        // prom-client refuses such values with a throw; a latency is never one, and a metric must not fail a request.
        if (!Number.isFinite(value)) return;
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i++;
        series.counts[i]!++;
        series.sum += value;
        series.count++;
      },
    };
  }

  /** The registry's text format: bucket labels `le` first, then the series' labels (as prom-client writes them). */
  async getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series_.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le }, sharedLabels: s.labels, value: cumulative, metricName: bucket });
      });
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count, metricName: bucket },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** The registry's JSON: each value's labels merged (the series' after `le`), as prom-client's `get()`. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return data;
  }

  /** Zeroes every series (`registry.resetMetrics()`); observers handed out before go on counting from zero. */
  reset(): void {
    for (const s of this.series_.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

/** What one label set of a {@link ResolvedCounter} adds to. */
export interface CounterIncrement {
  inc(amount?: number): void;
}

interface CounterSeries {
  labels: Record<string, string>;
  value: number;
}

/**
 * A counter whose label sets are resolved once, for the per-request path (prom-client's labelled `inc`
 * hashes the label set on every call). Exposed like prom-client's Counter; see {@link ResolvedHistogram}.
 */
export class ResolvedCounter<L extends string> extends ResolvedMetric<L, CounterSeries> {
  readonly type = 'counter';

  /** The increment of one label set, values in `labelNames` order. */
  series(...values: string[]): CounterIncrement {
    const series = this.resolve(values, (labels) => ({ labels, value: 0 }));
    return {
      inc(amount = 1): void {
        // prom-client throws on a negative or non-finite increment; a count must not fail a request.
        if (amount >= 0 && amount !== Number.POSITIVE_INFINITY) series.value += amount;
      },
    };
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values = [...this.series_.values()].map((s) => ({ value: s.value, labels: { ...s.labels } }));
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Zeroes every series (`registry.resetMetrics()`); increments handed out before go on counting from zero. */
  reset(): void {
    for (const s of this.series_.values()) s.value = 0;
  }
}
