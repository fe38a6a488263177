import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start as startInventory, type InventoryAgent } from '../../examples/agents/inventory.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { createRegistry } from '../../src/metrics.js';
import { markdownFiles, metricNames, prose, readDoc } from './markdown.js';
import { Registry } from 'prom-client';
import { rabbitMetrics } from '../../src/bus/rabbitmq/metrics.js';
import { sagaMetrics } from '../../src/saga/metrics.js';
import { sagaFlowMetrics } from '../../shadow/saga-flows.js';

/**
 * Metric names as a running system registers them: a sidecar started the way `cutover sidecar` starts it
 * (registry with the Node.js default metrics), on the embedded bus, where it also runs the shadow side
 * (delivery consumer and comparator) in process on the same registry. docs/operations.md must list every
 * one; the dashboard, the alert rules and every doc may only name metrics that exist.
 */
const TOKEN = 'docs-test-admin-token-0123456789';
let dir: string;
let agent: InventoryAgent;
let sidecar: SidecarHandle;
const registered = new Map<string, string>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cutover-docs-metrics-'));
  agent = await startInventory();
  sidecar = await startSidecar(
    {
      agent: 'inventory',
      listen: '127.0.0.1:0',
      upstream: agent.url,
      admin: { listen: '127.0.0.1:0', token: TOKEN },
      bus: { kind: 'embedded', path: path.join(dir, 'bus.db') },
      dataDir: dir,
      flows: [
        {
          name: 'inventory.reserve',
          match: { method: 'POST', path: '/reservations' },
          topic: 'commands.agent.inventory.reserve',
          key: 'body.sku',
          mode: 'shadow',
          shadow: { target: agent.url },
        },
      ],
    },
    { registry: createRegistry({ defaultMetrics: true }) },
  );
  for (const m of await sidecar.registry.getMetricsAsJSON()) registered.set(m.name, String(m.type));
  // A sidecar or shadow process on RabbitMQ registers the adapter's group metrics on the same registry too.
  const rabbit = new Registry();
  rabbitMetrics(rabbit);
  // So does a process running a saga orchestrator, and a shadow side with saga flows.
  sagaMetrics(rabbit);
  sagaFlowMetrics(rabbit);
  for (const m of await rabbit.getMetricsAsJSON()) registered.set(m.name, String(m.type));
});

afterAll(async () => {
  await sidecar?.close();
  await agent?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function unknown(names: Iterable<string>): string[] {
  return [...names].filter((n) => !registered.has(n)).sort();
}

describe('docs/operations.md', () => {
  it('the sidecar on the embedded bus runs the shadow side in process (shadow.inProcess default)', () => {
    expect(sidecar.shadow(), 'in-process shadow side').toBeDefined();
  });

  it('lists every metric a sidecar and the shadow side register, with its type', () => {
    expect(registered.size).toBeGreaterThan(40);
    const text = prose('docs/operations.md');
    const rows = text.split('\n').filter((l) => l.startsWith('| `cutover_'));
    const missing: string[] = [];
    for (const [name, type] of registered) {
      const row = rows.find((r) => r.includes(`\`${name}\``));
      if (!row) missing.push(name);
      else expect(row, name).toContain(`| ${type} |`);
    }
    expect(missing, 'metrics registered by the code but not documented').toEqual([]);
  });

  it('names no metric that does not exist', () => {
    expect(unknown(metricNames(readDoc('docs/operations.md')))).toEqual([]);
  });

  it('the /metrics endpoint answers with the bearer token, as the page shows with curl', async () => {
    const url = `${sidecar.admin.url}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain('# TYPE cutover_sidecar_requests_total counter');
    expect(body).toContain('cutover_process_cpu_seconds_total');
    expect(body).toContain('# TYPE cutover_parity_records_total counter');
  });
});

describe('metric names in all docs', () => {
  it('every cutover metric named in README.md and docs/*.md exists', () => {
    const families = /^cutover_(sidecar|shadow|parity|comparator|process|nodejs)_[a-z0-9_]*[a-z0-9]$/;
    const named = markdownFiles().flatMap((f) => [...metricNames(readDoc(f))].filter((n) => families.test(n)).map((n) => ({ f, n })));
    expect(named.filter(({ n }) => !registered.has(n)).map(({ f, n }) => `${f}: ${n}`)).toEqual([]);
  });
});

interface Rule {
  alert?: string;
  record?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

describe('docs/prometheus-alerts.yaml', () => {
  const file = parse(readDoc('docs/prometheus-alerts.yaml')) as { groups?: Array<{ name?: string; rules?: Rule[] }> };
  const rules = (file.groups ?? []).flatMap((g) => g.rules ?? []);

  it('has the shape of a Prometheus rule file: groups[].rules[] with alert, expr, for, labels, annotations', () => {
    expect(Array.isArray(file.groups) && file.groups.length > 0).toBe(true);
    for (const group of file.groups!) {
      expect(typeof group.name).toBe('string');
      expect(Array.isArray(group.rules) && group.rules.length > 0, group.name).toBe(true);
    }
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^[A-Z][A-Za-z0-9]+$/);
      expect(typeof rule.expr, rule.alert).toBe('string');
      expect(rule.for, rule.alert).toMatch(/^\d+(ms|s|m|h|d)$/);
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
    }
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });

  it('alerts on parity, queue depth, spool growth, dropped events, DLQ rate, consumer lag and publish failures', () => {
    const byMetric = (metric: string): string[] => rules.filter((r) => metricNames(r.expr ?? '').has(metric)).map((r) => r.alert!);
    expect(byMetric('cutover_parity_records_total')).toContain('CutoverParityDrop');
    expect(byMetric('cutover_sidecar_publish_queue_depth')).toContain('CutoverPublishQueueHigh');
    expect(byMetric('cutover_sidecar_spool_bytes')).toContain('CutoverSpoolGrowing');
    expect(byMetric('cutover_sidecar_events_dropped_total')).toContain('CutoverEventsDropped');
    expect(byMetric('cutover_shadow_deliveries_total')).toContain('CutoverDlqRate');
    expect(byMetric('cutover_shadow_bus_lag_seconds')).toContain('CutoverConsumerLag');
    expect(byMetric('cutover_sidecar_publish_failures_total')).toContain('CutoverPublishFailures');
  });

  it('uses only metrics that exist', () => {
    expect(unknown(rules.flatMap((r) => [...metricNames(r.expr ?? '')]))).toEqual([]);
  });

  it('lists every alert in docs/operations.md', () => {
    const text = prose('docs/operations.md');
    for (const rule of rules) expect(text, rule.alert).toContain(`| \`${rule.alert}\` |`);
  });
});

interface Panel {
  type: string;
  id: number;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Array<{ expr?: string; refId?: string }>;
}

describe('docs/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(readDoc('docs/grafana-dashboard.json')) as {
    title: string;
    uid: string;
    schemaVersion: number;
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string }> };
  };
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));

  it('is an importable dashboard: panels with Prometheus targets, a data source variable, unique ids', () => {
    expect(dashboard.title).toBe('cutover');
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource' }));
    expect(panels.length).toBeGreaterThanOrEqual(15);
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.gridPos, p.title).toBeDefined();
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.expr, p.title).toBeTruthy();
        expect(t.refId, p.title).toMatch(/^[A-Z]$/);
      }
    }
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('has panels for the figures operators watch', () => {
    const used = new Set(exprs.flatMap((e) => [...metricNames(e)]));
    for (const metric of [
      'cutover_sidecar_requests_total',
      'cutover_sidecar_request_duration_seconds',
      'cutover_sidecar_upstream_duration_seconds',
      'cutover_sidecar_publish_duration_seconds',
      'cutover_sidecar_publish_failures_total',
      'cutover_sidecar_publish_queue_depth',
      'cutover_sidecar_spool_depth',
      'cutover_sidecar_events_dropped_total',
      'cutover_parity_records_total',
      'cutover_shadow_deliveries_total',
      'cutover_shadow_bus_lag_seconds',
    ]) {
      expect(used, metric).toContain(metric);
    }
  });

  it('uses only metrics that exist', () => {
    expect(unknown(exprs.flatMap((e) => [...metricNames(e)]))).toEqual([]);
  });
});

/** promtool is not a dependency; when it is installed (Debian: `apt-get install prometheus`), use it too. */
const promtool = (() => {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!promtool)('promtool, when installed', () => {
  it('accepts the alert rules', () => {
    expect(() => execFileSync('promtool', ['check', 'rules', path.resolve(import.meta.dirname, '../../docs/prometheus-alerts.yaml')], { stdio: 'pipe' })).not.toThrow();
  });

  it("parses every dashboard query (Grafana's variables filled in)", async () => {
    const dashboard = JSON.parse(readDoc('docs/grafana-dashboard.json')) as { panels: Panel[] };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr!));
    const rules = exprs.map((e, i) => ({ record: `cutover:dashboard_query_${i}`, expr: e.replace(/\$__rate_interval/g, '5m').replace(/\$(flow|job)/g, '.*') }));
    const tmp = await mkdtemp(path.join(tmpdir(), 'cutover-promtool-'));
    try {
      const file = path.join(tmp, 'dashboard-rules.json');
      await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      expect(() => execFileSync('promtool', ['check', 'rules', file], { stdio: 'pipe' })).not.toThrow();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
