import type { IncomingMessage } from 'node:http';
import { BodyCapture } from './capture.js';

/** A sampled call on its way: copies of its bodies, up to `observe.maxBodyBytes`. */
export class ObservedExchange {
  request: BodyCapture | undefined;
  response: BodyCapture | undefined;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly idempotencyKey: boolean,
    private readonly limit: number,
  ) {}

  /** The request is being piped upstream: copy its chunks as they pass (never pauses the pipe). */
  onRequest(req: IncomingMessage): void {
    const capture = (this.request = new BodyCapture(this.limit));
    req.on('data', (chunk: Buffer) => capture.push(chunk));
  }

  onResponse(res: IncomingMessage): void {
    const capture = (this.response = new BodyCapture(this.limit));
    res.on('data', (chunk: Buffer) => capture.push(chunk));
  }
}
