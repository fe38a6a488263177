import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { ObservationData } from './call-event.js';
import { BodyCapture, decodeContent, encodeBody } from './capture.js';
import { headerValue, pickHeaders, type HeaderPolicy } from './redact.js';
import type { Upstream } from './upstreams.js';

/** A request sampled for the noise baseline, as it arrived (headers by reference, not copied). */
export interface NoiseRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Set once the request is routed; without one there is nothing to call again. */
  upstream?: Upstream;
}

/** Limits and header policy of the noise call, fixed at start. */
export interface NoiseCallOptions {
  /** How long the second call may take, as for the first. */
  timeout: number;
  maxResponseBytes: number;
  /** Which response headers an observation may carry. */
  resHeaders: HeaderPolicy;
}

/**
 * The noise baseline, after Diffy: calls the agent a second time with the same safe request, after the
 * caller has its answer. The comparator diffs the two direct results: what differs between them is noise
 * for the flow.
 *
 * Resolves to the observation data of the second call, or undefined when there is no upstream or its
 * response body is over `maxResponseBytes`; rejects when the call fails.
 */
export async function callAgainForNoise(noise: NoiseRequest, options: NoiseCallOptions): Promise<ObservationData | undefined> {
  const { method, url, headers, upstream } = noise;
  if (!upstream) return undefined;
  const started = performance.now();
  const response = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; overLimit: boolean }>((resolve, reject) => {
    const target = new URL(url, upstream.url);
    const { connection: _c, 'keep-alive': _k, 'transfer-encoding': _t, 'content-length': _l, ...forward } = headers;
    const request = (target.protocol === 'https:' ? https : http).request(target, { method, headers: forward, agent: upstream.agent, timeout: options.timeout }, (res) => {
      const capture = new BodyCapture(options.maxResponseBytes);
      res.on('data', (chunk: Buffer) => capture.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: capture.buffer(), overLimit: capture.overLimit }));
      res.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error('noise call timed out')));
    request.on('error', reject);
    request.end();
  });
  if (response.overLimit) return undefined;
  const data: ObservationData = {
    status: response.status,
    headers: pickHeaders(response.headers, options.resHeaders),
    latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
  };
  const encoding = headerValue(response.headers['content-encoding']);
  const decoded = decodeContent(response.body, encoding, options.maxResponseBytes);
  if (decoded) Object.assign(data, encodeBody(decoded, headerValue(response.headers['content-type'])));
  return data;
}
