import http from 'node:http';

/** One POST with a JSON body; resolves with the status (0 on a connection error), never rejects. */
export function post(port: number, agent: http.Agent, path: string, body: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers }, agent },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

export interface RateResult {
  p50: number;
  p99: number;
  errors: number;
  sent: number;
}

/**
 * Open loop at `rate` req/s: request i is sent at start + i/rate whatever the earlier ones do, and its latency
 * is measured from that scheduled time (so queueing shows up, unlike a closed loop). `send(i)` resolves with
 * the status; anything but `okStatus` counts as an error. A warm-up of `warmUp` requests runs first and is not
 * recorded; `onStart`/`onEnd` bracket the measured part (CPU sampling, say).
 */
export async function openLoop(options: {
  rate: number;
  seconds: number;
  warmUp: number;
  send: (agent: http.Agent, i: number) => Promise<number>;
  okStatus?: number;
  maxSockets?: number;
  onStart?: () => Promise<void>;
  onEnd?: () => Promise<void>;
}): Promise<RateResult> {
  const { rate, send } = options;
  const okStatus = options.okStatus ?? 201;
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 512 });
  const run = async (total: number, record: boolean): Promise<{ lat: number[]; errors: number }> => {
    const lat: number[] = [];
    let errors = 0;
    const interval = 1_000 / rate;
    const start = performance.now();
    let i = 0;
    const pending: Promise<void>[] = [];
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        while (i < total && start + i * interval <= now) {
          const scheduled = start + i * interval;
          pending.push(
            send(agent, i).then((status) => {
              if (status !== okStatus) errors++;
              if (record) lat.push(performance.now() - scheduled);
            }),
          );
          i++;
        }
        if (i < total) setTimeout(tick, Math.max(0, start + i * interval - performance.now()));
        else resolve();
      };
      tick();
    });
    await Promise.all(pending);
    return { lat, errors };
  };
  await run(options.warmUp, false);
  await options.onStart?.();
  const { lat, errors } = await run(Math.round(rate * options.seconds), true);
  await options.onEnd?.();
  agent.destroy();
  lat.sort((a, b) => a - b);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { p50: q(0.5), p99: q(0.99), errors, sent: lat.length };
}
