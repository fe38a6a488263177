import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start as startInventory, type InventoryAgent } from '../../examples/agents/inventory.js';
import { parseByteSize } from '../../src/config/sidecar.js';
import { cutoverConfigSchema, sidecarConfigSchema, type SidecarConfig } from '../../src/config/schema.js';
import { parseListen } from '../../src/net.js';
import { startSidecar, type SidecarHandle } from '../../proxy/sidecar.js';
import { parseConfigText } from '../../src/config/load.js';
import { DOCS, readDoc, stubEnv } from './markdown.js';

/**
 * The Kubernetes example in docs/kubernetes must hang together: the ConfigMap's cutover config validates,
 * every variable it uses comes from the Secret or the container's env, the Deployment mounts it where the
 * command reads it, ports, probes and shutdown timings agree with the config, and the liveness probe's
 * command works against a live sidecar.
 */
const run = promisify(execFile);
const K8S = path.join(DOCS, 'kubernetes');

// Plain shapes of the few manifest fields the checks read (the manifests are parsed YAML).
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
  envFrom?: Array<{ secretRef?: { name: string } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
  readinessProbe?: { tcpSocket?: { port: string | number } };
  livenessProbe?: { exec?: { command: string[] } };
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
}
interface Manifest {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    ports?: Array<{ name: string; port: number; targetPort: string | number }>;
    template?: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds?: number;
        containers: Container[];
        volumes?: Array<{ name: string; configMap?: { name: string }; emptyDir?: { sizeLimit?: string } }>;
      };
    };
  };
}

const manifests: Array<Manifest & { file: string }> = readdirSync(K8S)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((file) => parseAllDocuments(readDoc(`docs/kubernetes/${file}`)).map((d) => ({ ...(d.toJS() as Manifest), file })));

const one = (kind: string, name: string): Manifest => {
  const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in docs/kubernetes`);
  return m;
};
const configMap = one('ConfigMap', 'inventory-cutover');
const secret = one('Secret', 'inventory-cutover');
const deployment = one('Deployment', 'inventory');
const shadow = one('Deployment', 'inventory-cutover-shadow');
const service = one('Service', 'inventory');
const pod = deployment.spec!.template!.spec;
const sidecarContainer = pod.containers.find((c) => c.name === 'cutover')!;
const agentContainer = pod.containers.find((c) => c.name === 'agent')!;
const configText = configMap.data!['cutover.yaml']!;

/** The variables a container sees: its `env` entries and the keys of the Secrets it takes `envFrom`. */
function containerEnv(c: Container): Set<string> {
  const names = new Set((c.env ?? []).map((e) => e.name));
  for (const from of c.envFrom ?? []) {
    const s = manifests.find((m) => m.kind === 'Secret' && m.metadata.name === from.secretRef?.name);
    for (const key of Object.keys(s?.stringData ?? {})) names.add(key);
  }
  return names;
}

const config: SidecarConfig = parseConfigText(configText, sidecarConfigSchema, { env: stubEnv(), source: 'docs/kubernetes/configmap.yaml' });
const sleepOf = (c: Container): number => Number(c.lifecycle?.preStop?.exec?.command[1] ?? 0);

describe('docs/kubernetes', () => {
  it('holds the ConfigMap, Secret, Deployment, Service and the shadow Deployment', () => {
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      'ConfigMap/inventory-cutover',
      'Deployment/inventory',
      'Deployment/inventory-cutover-shadow',
      'Secret/inventory-cutover',
      'Service/inventory',
    ]);
  });

  it("the ConfigMap's cutover config validates for the sidecar, for cutover validate and for cutover shadow", () => {
    expect(config.agent).toBe('inventory');
    expect(() => parseConfigText(configText, cutoverConfigSchema, { env: stubEnv() })).not.toThrow();
    expect(() => parseConfigText(configText, cutoverConfigSchema, { env: stubEnv() })).not.toThrow();
  });

  it('every ${VAR} of the config is set in the containers that read it, from the Secret', () => {
    const used = [...configText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!);
    if (config.encryption) used.push(config.encryption.keyEnv);
    expect(used.length).toBeGreaterThan(0);
    for (const c of [sidecarContainer, shadow.spec!.template!.spec.containers[0]!]) {
      const env = containerEnv(c);
      for (const name of used) expect(env, `${c.name}: ${name}`).toContain(name);
    }
    expect(Object.keys(secret.stringData ?? {}).sort()).toEqual([...new Set(used)].sort());
  });

  it('both Deployments mount the ConfigMap where their command reads it', () => {
    for (const d of [deployment, shadow]) {
      const spec = d.spec!.template!.spec;
      const c = spec.containers.find((x) => x.args?.includes('--config'))!;
      const file = c.args![c.args!.indexOf('--config') + 1]!;
      const volume = spec.volumes!.find((v) => v.configMap?.name === configMap.metadata.name)!;
      const mount = c.volumeMounts!.find((m) => m.name === volume.name)!;
      expect(file, d.metadata.name).toBe(`${mount.mountPath}/cutover.yaml`);
      expect(c.args![0]).toBe(d === deployment ? 'sidecar' : 'shadow');
      const data = c.volumeMounts!.find((m) => m.mountPath === config.dataDir);
      expect(data, `${d.metadata.name}: a volume at dataDir ${config.dataDir}`).toBeDefined();
      expect(c.securityContext?.runAsNonRoot).toBe(true);
      expect(typeof c.securityContext?.runAsUser).toBe('number');
    }
  });

  it('both Deployments run node itself on the launcher the image holds, so SIGTERM reaches the sidecar', () => {
    const entrypoint = /ENTRYPOINT (\[.*\])/.exec(readDoc('docs/deployment.md'))?.[1];
    expect(entrypoint, 'the Dockerfile in docs/deployment.md').toBeDefined();
    for (const d of [deployment, shadow]) {
      const c = d.spec!.template!.spec.containers.find((x) => x.args?.includes('--config'))!;
      expect(c.command, d.metadata.name).toEqual(JSON.parse(entrypoint!));
    }
    expect(JSON.parse(entrypoint!)).toEqual(['node', '/app/bin/cutover.js']);
  });

  it('ports agree: Service → sidecar data port, admin port, sidecar → agent', () => {
    const port = (name: string): number | undefined => sidecarContainer.ports?.find((p) => p.name === name)?.containerPort;
    expect(port('http')).toBe(parseListen(config.listen).port);
    expect(port('cutover-admin')).toBe(parseListen(config.admin.listen).port);
    expect(service.spec!.ports!.map((p) => p.targetPort)).toEqual(['http']);
    expect(deployment.spec!.template!.metadata.labels).toMatchObject(service.spec!.selector as Record<string, string>);
    const upstream = new URL(config.upstream!);
    expect(upstream.hostname).toBe('127.0.0.1');
    expect(agentContainer.env?.find((e) => e.name === 'PORT')?.value).toBe(upstream.port);
  });

  it('probes: readiness on the data port, liveness on /healthz of the admin port', () => {
    expect(sidecarContainer.readinessProbe?.tcpSocket?.port).toBe('http');
    const script = sidecarContainer.livenessProbe!.exec!.command.join(' ');
    expect(script).toContain(`http://127.0.0.1:${parseListen(config.admin.listen).port}/healthz`);
    expect(script).toContain('process.env.CUTOVER_ADMIN_TOKEN');
  });

  it('shutdown timings add up: the agent outlives the drain, the grace period covers it', () => {
    const sidecarSleep = sleepOf(sidecarContainer);
    const grace = pod.terminationGracePeriodSeconds!;
    expect(sidecarSleep).toBeGreaterThan(0);
    expect(sleepOf(agentContainer)).toBeGreaterThan(sidecarSleep + config.shutdownTimeout / 1000);
    expect(grace).toBeGreaterThan(sidecarSleep + (config.shutdownTimeout + config.publisher.drainTimeout) / 1000);
  });

  it('the spool volume is larger than spool.maxBytes', () => {
    const data = pod.volumes!.find((v) => v.emptyDir && sidecarContainer.volumeMounts!.some((m) => m.name === v.name && m.mountPath === config.dataDir))!;
    const limit = parseByteSize(data.emptyDir!.sizeLimit!.replace(/i$/, 'iB'))!;
    expect(limit).toBeGreaterThan(config.spool.maxBytes);
  });

  it('listen addresses take IPv4, names, or IPv6 literals in brackets (as deployment.md says)', () => {
    const base = 'agent: a\nupstream: http://127.0.0.1:1\nadmin: { auth: false }\n';
    expect(() => parseConfigText(`${base}listen: 0.0.0.0:15000\n`, sidecarConfigSchema, { env: {} })).not.toThrow();
    expect(() => parseConfigText(`${base}listen: "[::]:15000"\n`, sidecarConfigSchema, { env: {} })).not.toThrow();
    expect(() => parseConfigText(`${base}listen: "::1:15000"\n`, sidecarConfigSchema, { env: {} })).toThrow(/listen/);
  });
});

describe('the liveness probe command of docs/kubernetes/deployment.yaml', () => {
  const TOKEN = 'k8s-probe-test-token-0123456789';
  let dir: string;
  let agent: InventoryAgent;
  let sidecar: SidecarHandle;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cutover-docs-k8s-'));
    agent = await startInventory();
    // The ConfigMap's config, on loopback ports, the embedded bus and a temp data dir.
    sidecar = await startSidecar(
      { ...config, listen: '127.0.0.1:0', upstream: agent.url, admin: { ...config.admin, listen: '127.0.0.1:0', token: TOKEN }, bus: { kind: 'embedded', path: path.join(dir, 'bus.db') }, dataDir: dir },
      { env: stubEnv({ CUTOVER_ADMIN_TOKEN: TOKEN }) },
    );
  });
  afterAll(async () => {
    await sidecar?.close();
    await agent?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function probe(token: string): Promise<number> {
    const [cmd, ...args] = sidecarContainer.livenessProbe!.exec!.command.map((a) => a.replace(`127.0.0.1:${parseListen(config.admin.listen).port}`, `127.0.0.1:${sidecar.admin.port}`));
    try {
      await run(cmd === 'node' ? process.execPath : cmd!, args, { env: { ...process.env, CUTOVER_ADMIN_TOKEN: token }, timeout: 15_000 });
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  }

  it('exits 0 against a live sidecar with the token, 1 with a wrong one', async () => {
    expect(await probe(TOKEN)).toBe(0);
    expect(await probe('wrong-token-0123456789abcdef')).toBe(1);
  });
});
