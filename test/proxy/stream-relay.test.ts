import { describe, expect, it } from 'vitest';
import type { ServerResponse } from 'node:http';
import { StreamRelay } from '../../proxy/bus-mode.js';
import { formatSse } from '../../src/events/sse.js';

/** What the relay wrote to its caller. */
function response(): ServerResponse & { status?: number; headers?: Record<string, unknown>; body: string; ended: boolean } {
  const res = {
    headersSent: false,
    destroyed: false,
    writableEnded: false,
    body: '',
    ended: false,
    writeHead(status: number, headers: Record<string, unknown>) {
      Object.assign(res, { status, headers, headersSent: true });
      return res;
    },
    write(text: string) {
      res.body += text;
      return true;
    },
    end() {
      res.ended = true;
      res.writableEnded = true;
      return res;
    },
  };
  return res as unknown as ReturnType<typeof response>;
}

const event = (n: number): string => formatSse(JSON.stringify({ n }));

describe('StreamRelay', () => {
  it('relays events in seq order: early ones wait for their turn, repeats of a redelivery are dropped', () => {
    const res = response();
    const relay = new StreamRelay(res);
    expect(relay.started).toBe(false);
    relay.push({ seq: 1, text: event(1) });
    expect(res.body).toBe('');
    relay.push({ seq: 0, text: event(0) });
    expect(res.status).toBe(200);
    expect(res.headers?.['content-type']).toBe('text/event-stream');
    expect(res.body).toBe(event(0) + event(1));
    relay.push({ seq: 0, text: event(0) });
    relay.push({ seq: 1, text: event(1) });
    expect(res.body).toBe(event(0) + event(1));
    expect(relay.started).toBe(true);
  });

  it('finishes with the events of the reply it has not relayed yet, then ends', () => {
    const res = response();
    const relay = new StreamRelay(res);
    relay.push({ seq: 0, text: event(0) });
    relay.finish(Buffer.from(event(0) + event(1) + event(2)));
    expect(res.body).toBe(event(0) + event(1) + event(2));
    expect(res.ended).toBe(true);
  });

  it('ends a stream that cannot finish with the event saying why', () => {
    const res = response();
    const relay = new StreamRelay(res);
    relay.push({ seq: 0, text: event(0) });
    relay.abort(event(-1));
    expect(res.body).toBe(event(0) + event(-1));
    expect(res.ended).toBe(true);
  });

  it('ignores what is not a stream event', () => {
    const res = response();
    const relay = new StreamRelay(res);
    relay.push(undefined);
    relay.push({ seq: 0.5, text: 'x' });
    relay.push({ seq: 0, text: 7 as unknown as string });
    expect(relay.started).toBe(false);
    expect(res.body).toBe('');
  });
});
