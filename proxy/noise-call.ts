import type { IncomingHttpHeaders } from 'node:http';
import type { ObservationData } from '../src/events/wire.js';
import { replayHeaders, sendReplay } from '../src/http/replay.js';
import { pickHeaders, type HeaderPolicy } from './redact.js';
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
  // The caller's Host is kept: the direct call went out with it too (the proxy does not change the origin).
  const response = await sendReplay(new URL(upstream.url), { method, target: url, headers: replayHeaders(headers, { keepHost: true }), body: undefined }, {
    timeout: options.timeout,
    maxResponseBytes: options.maxResponseBytes,
    keepHeaders: (h) => pickHeaders(h, options.resHeaders),
    agent: upstream.agent,
    label: 'upstream',
  });
  if (response.body.bodySkipped) return undefined;
  const { bodyBytes: _size, ...body } = response.body;
  return { status: response.status, headers: response.headers, latencyMs: Math.round(response.latencyMs * 1000) / 1000, ...body };
}
