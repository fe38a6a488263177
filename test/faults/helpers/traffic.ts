import http from 'node:http';
import type net from 'node:net';

/** The agent behind the sidecar: answers every call 200 and remembers each call id it saw. */
export interface CountingUpstream {
  readonly url: string;
  /** Call id → how many times it arrived. */
  readonly seen: Map<string, number>;
  close(): Promise<void>;
}

export async function startCountingUpstream(): Promise<CountingUpstream> {
  const seen = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let id = '';
      try {
        id = String((JSON.parse(Buffer.concat(chunks).toString()) as { id?: unknown }).id ?? '');
      } catch {
        // counted under '' below: a call the test did not send
      }
      seen.set(id, (seen.get(id) ?? 0) + 1);
      const body = JSON.stringify({ ok: true, id });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  server.on('connection', (s) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** How one call through the sidecar ended for its caller. */
export interface CallResult {
  id: string;
  status?: number;
  /** The first 4 KiB of the response body. */
  body?: string;
  error?: string;
  /** Date.now() when the call was sent. */
  startedAt: number;
  /** Date.now() when the caller had the whole response (or the error). */
  doneAt: number;
}

export interface TrafficOptions {
  /** Prefix of every call id: what makes this test's events recognisable on a shared bus. */
  prefix: string;
  /** Time between two call starts. */
  intervalMs?: number;
  maxInFlight?: number;
  /** Calls in all; the traffic stops by itself after them. */
  max?: number;
  /** A call with no complete response after this counts as failed (a hang, not a slow call). */
  callTimeoutMs?: number;
}

/**
 * Paced POST /calls traffic with a unique id per call in the body, so the upstream, the caller and the bus
 * can each be counted on their own. Pacing keeps a fault's few seconds full of calls without flooding
 * two shared cores.
 */
export class Traffic {
  readonly results: CallResult[] = [];
  private issued = 0;
  private inFlight = 0;
  private stopped = false;
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly o: Required<TrafficOptions>;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly url: string,
    options: TrafficOptions,
  ) {
    this.o = { intervalMs: 10, maxInFlight: 8, max: 400, callTimeoutMs: 10_000, ...options };
  }

  get sent(): number {
    return this.issued;
  }

  get done(): number {
    return this.results.length;
  }

  /** Stops issuing calls until {@link resume} (calls in flight go on). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** For failure messages: where the traffic stands. */
  describe(): string {
    return `sent ${this.issued}, done ${this.done}, in flight ${this.inFlight}, failed ${this.failed().length}`;
  }

  start(): this {
    const tick = (): void => {
      if (this.stopped || this.issued >= this.o.max) return;
      if (this.paused) {
        this.timer = setTimeout(tick, this.o.intervalMs);
        return;
      }
      if (this.inFlight < this.o.maxInFlight) this.fire(`${this.o.prefix}-${this.issued++}`);
      this.timer = setTimeout(tick, this.o.intervalMs);
    };
    tick();
    return this;
  }

  /** Stops issuing calls and waits for the ones in flight (each ends by its own timeout at the latest). */
  async stop(): Promise<CallResult[]> {
    this.stopped = true;
    clearTimeout(this.timer);
    while (this.pending.size) await Promise.all([...this.pending]);
    this.agent.destroy();
    return this.results;
  }

  /** Calls that did not end in a 200 for their caller. */
  failed(): CallResult[] {
    return this.results.filter((r) => r.status !== 200);
  }

  private fire(id: string): void {
    this.inFlight++;
    const p = callOnce(this.url, id, this.agent, this.o.callTimeoutMs).then((r) => {
      this.results.push(r);
      this.inFlight--;
      this.pending.delete(p);
    });
    this.pending.add(p);
  }
}

/** One POST /calls carrying `id`; never rejects: an error or a timeout is part of the result. */
export function callOnce(baseUrl: string, id: string, agent?: http.Agent, timeoutMs = 10_000, path = '/calls'): Promise<CallResult> {
  const body = JSON.stringify({ id });
  const startedAt = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<CallResult, 'startedAt' | 'doneAt' | 'id'>): void => {
      if (settled) return;
      settled = true;
      resolve({ id, ...r, startedAt, doneAt: Date.now() });
    };
    const req = http.request(`${baseUrl}${path}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => void (text.length < 4_096 && (text += c.toString())));
      res.on('end', () => finish({ status: res.statusCode, body: text }));
      res.on('error', (err) => finish({ status: res.statusCode, body: text, error: err.message }));
      res.on('aborted', () => finish({ status: res.statusCode, body: text, error: 'aborted' }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no complete response within ${timeoutMs} ms`)));
    req.on('error', (err) => finish({ error: err.message }));
    req.end(body);
  });
}
