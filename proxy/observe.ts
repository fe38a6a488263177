import type { ServerResponse } from 'node:http';
import type { BusMessage } from '../src/bus/types.js';
import { ErrorCodes } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import { toNoiseObservation } from '../shadow/noise.js';
import { buildObservationMessage } from './call-event.js';
import type { ObservationData } from '../src/events/wire.js';
import { encodeBody, encodeContent } from '../src/events/body.js';
import { encryptBody } from '../src/crypto/body-fields.js';
import type { FieldCipher } from '../src/crypto/field-cipher.js';
import type { Exchange } from './exchange.js';
import { UNMATCHED, type SidecarMetrics, type SkipReason } from './metrics.js';
import { callAgainForNoise, type NoiseCallOptions } from './noise-call.js';
import type { CaptureConfig, RedactConfig } from '../src/config/sidecar.js';
import type { Outbox } from './outbox.js';
import type { Contract } from '../src/discovery/contract.js';
import { jsonBody } from '../src/discovery/shape.js';
import { headerPolicy, headerValue, pickHeaders, type HeaderPolicy } from './redact.js';

/** What {@link DirectObserver} needs to build, encrypt and publish observations. */
export interface DirectObserverOptions {
  /** The CloudEvent source agent. */
  agent: string;
  capture: CaptureConfig;
  redact: RedactConfig;
  /** How long the noise call may take. */
  upstreamTimeout: number;
  outbox: Outbox;
  metrics: SidecarMetrics;
  cipher: FieldCipher | undefined;
  /** The flows' payload contract (`contract:`): calls that stop fitting it carry `drift`. */
  contract?: Contract | undefined;
  logger: Logger;
}

/**
 * The end of every exchange: request metrics, and for flows in shadow mode the direct observation (the
 * response the caller got) once both the call event and the response are complete, followed by the noise
 * call when the request was sampled for it.
 */
export class DirectObserver {
  private readonly opts: DirectObserverOptions;
  private readonly resHeaders: HeaderPolicy;
  private readonly noiseCall: NoiseCallOptions;

  constructor(options: DirectObserverOptions) {
    this.opts = options;
    this.resHeaders = headerPolicy(options.capture.responseHeaders, options.redact.headers);
    this.noiseCall = { timeout: options.upstreamTimeout, maxResponseBytes: options.capture.maxResponseBytes, resHeaders: this.resHeaders };
  }

  /** The response is done (or the caller left): metrics, and the direct observation in shadow mode. */
  complete(ex: Exchange, res: ServerResponse): void {
    if (ex.timer) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    const elapsed = performance.now() - ex.started;
    ex.elapsed = elapsed;
    const flow = ex.entry?.config.name ?? UNMATCHED;
    const m = this.opts.metrics.forFlow(flow, ex.mode);
    m.duration.observe(elapsed / 1000);
    m.request(res.statusCode);
    if (!ex.reqCapture) return;
    if (!res.writableFinished && ex.failure?.code !== ErrorCodes.UPSTREAM_ABORTED) {
      if (ex.published) this.skip(ex, 'client_aborted');
      return;
    }
    ex.responded = true;
    if (ex.published) this.observe(ex);
  }

  /** Publishes the direct observation once both the call event and the response are complete. */
  observe(ex: Exchange): void {
    if (ex.observed) return;
    ex.observed = true;
    const entry = ex.entry!;
    const res = ex.res!;
    const elapsed = ex.elapsed;
    try {
      const data: ObservationData = {
        status: res.statusCode,
        headers: pickHeaders(res.getHeaders(), this.resHeaders),
        latencyMs: Math.round(elapsed * 1000) / 1000,
      };
      if (ex.sample) data.request = ex.sample;
      if (ex.rpcHeaderMismatch) data.rpcHeaderMismatch = ex.rpcHeaderMismatch;
      const version = directVersion(entry.config.versions, res);
      if (version) data.version = version;
      if (ex.failure) {
        data.error = { code: ex.failure.code, message: ex.failure.message };
        if (ex.failure.body) Object.assign(data, encodeBody(ex.failure.body, 'application/json'));
        // A response cut short: what arrived is not a body anyone could compare, only its size is kept.
        else if (ex.resCapture) data.bodyBytes = ex.resCapture.bytes;
      } else if (ex.resCapture) {
        const capture = ex.resCapture;
        data.bodyBytes = capture.bytes;
        if (capture.overLimit) {
          data.bodySkipped = 'too_large';
          this.skip(ex, 'response_too_large');
        } else {
          this.addResponseBody(data, capture.buffer(), res);
        }
      }
      const drift = this.opts.contract && !ex.failure ? this.drift(ex, data) : undefined;
      if (drift) data.drift = drift;
      this.opts.outbox.enqueue(entry.observationsTopic, this.observation(ex, data));
      entry.counters.observations++;
      if (ex.noise && !ex.failure) void this.observeNoise(ex);
    } catch (err) {
      this.opts.logger.error({ err, flow: entry.config.name, eventId: ex.id }, 'could not build the direct observation');
      this.skip(ex, 'capture_failed');
    }
  }

  /** Checks the call against its flow's contract, before any field is encrypted. */
  private drift(ex: Exchange, data: ObservationData): string | undefined {
    const response = data.bodyEncoding === undefined && data.bodySkipped === undefined ? data.body : undefined;
    return this.opts.contract!.drift(ex.entry!.config.name, { request: jsonBody(ex.reqCapture?.buffer()), response, status: data.status ?? 0 });
  }

  /** Counts a flow call that was forwarded but not (fully) dual-written. */
  skip(ex: Exchange, reason: SkipReason): void {
    const entry = ex.entry!;
    entry.counters.skipped[reason] = (entry.counters.skipped[reason] ?? 0) + 1;
    this.opts.metrics.skipped.inc({ flow: entry.config.name, reason });
  }

  /** A direct observation of `ex`'s call (configured fields of `data` encrypted in place). */
  private observation(ex: Exchange, data: ObservationData): BusMessage {
    const entry = ex.entry!;
    // Bound to the call's event id (the correlation id): the comparator knows it on both sides.
    const kid = encryptBody(this.opts.cipher, data, { eventId: ex.id!, part: 'response' });
    if (data.bodySkipped === 'unencryptable') this.skip(ex, 'unencryptable');
    return buildObservationMessage({
      agent: this.opts.agent,
      flow: { name: entry.config.name, schemaVersion: entry.config.schemaVersion, mode: 'shadow' },
      correlationId: ex.id!,
      traceparent: ex.traceparent!,
      data,
      ...(kid ? { kid } : {}),
    });
  }

  /** Publishes the second call's result as a noise observation with the same correlation id. */
  private async observeNoise(ex: Exchange): Promise<void> {
    const entry = ex.entry!;
    try {
      const data = await callAgainForNoise(ex.noise!, this.noiseCall);
      if (data) this.opts.outbox.enqueue(entry.observationsTopic, toNoiseObservation(this.observation(ex, data)));
    } catch (err) {
      // A failed second call only costs a noise sample; the caller was answered long ago.
      this.opts.logger.debug({ err: (err as Error).message, flow: entry.config.name, eventId: ex.id }, 'noise call failed');
    }
  }

  private addResponseBody(data: ObservationData, raw: Buffer, res: ServerResponse): void {
    Object.assign(data, encodeContent(raw, headerValue(res.getHeader('content-type')), headerValue(res.getHeader('content-encoding')), this.opts.capture.maxResponseBytes));
  }
}

/** The direct agent's code version: the flow's version header on the response, else its fixed value. */
function directVersion(versions: { header?: string | undefined; direct?: string | undefined } | undefined, res: ServerResponse): string | undefined {
  if (!versions) return undefined;
  const fromHeader = versions.header ? headerValue(res.getHeader(versions.header)) : undefined;
  return (fromHeader || versions.direct)?.slice(0, 100);
}
