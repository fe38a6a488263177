import type { IncomingMessage } from 'node:http';
import type { BusMessage } from '../src/bus/types.js';
import { isTraceparent, newTraceparent } from '../src/events/cloudevent.js';
import { parseQuery } from '../src/flows/key.js';
import type { FlowMode } from '../src/config/flow.js';
import { buildCallMessage } from './call-event.js';
import { callSample } from '../src/events/wire.js';
import { encodeBody, type EncodedBody } from '../src/events/body.js';
import type { FieldCipher } from '../src/crypto/field-cipher.js';
import { encryptBody, withholdUnencryptable } from '../src/crypto/body-fields.js';
import type { Exchange } from './exchange.js';
import type { FlowEntry } from './flow-table.js';
import type { SidecarMetrics } from './metrics.js';
import type { CaptureConfig, RedactConfig } from '../src/config/sidecar.js';
import { REDACTED, headerPolicy, headerValue, pickHeaders, redactQuery, redactSearch, type HeaderPolicy } from './redact.js';

/** A call event waiting for its id, mode and replyto: the parts that do not depend on the path it takes. */
export interface CallParts {
  traceparent: string;
  partitionKey: string | undefined;
  build(id: string, mode: FlowMode, replyTo: string | null): BusMessage;
}

/** What {@link CallEvents} needs: the source agent, what to capture and redact, and the field cipher. */
export interface CallEventsOptions {
  /** The CloudEvent source agent. */
  agent: string;
  capture: CaptureConfig;
  redact: RedactConfig;
  cipher: FieldCipher | undefined;
  metrics: SidecarMetrics;
}

/**
 * Turns a flow's request into its call event, the same for every path (shadow, canary, bus): partition
 * key from the flow's key (a keyed digest when the key is a secret), query values and headers redacted,
 * configured body fields encrypted.
 */
export class CallEvents {
  private readonly opts: CallEventsOptions;
  private readonly reqHeaders: HeaderPolicy;
  private readonly redactedQuery: ReadonlySet<string>;
  private readonly deniedHeaders: ReadonlySet<string>;

  constructor(options: CallEventsOptions) {
    this.opts = options;
    this.reqHeaders = headerPolicy(options.capture.requestHeaders, options.redact.headers);
    this.redactedQuery = new Set(options.redact.query);
    this.deniedHeaders = new Set(options.redact.headers);
  }

  /**
   * Everything of a call event that does not depend on the path it takes: body (encrypted fields
   * included), query, partition key, trace context, replay headers. `build` stamps id, mode and replyto.
   * Sets `ex.sample`, the call as the bus sees it.
   */
  callParts(req: IncomingMessage, ex: Exchange, raw: Buffer): CallParts {
    const entry = ex.entry!;
    const header = req.headers.traceparent;
    const traceparent = ex.traceparent ?? (typeof header === 'string' && isTraceparent(header) ? header : newTraceparent());
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const search = q === -1 ? '' : url.slice(q + 1);
    const query = search ? redactQuery(parseQuery(search), this.redactedQuery) : {};
    const encoded = encodeBody(raw, headerValue(req.headers['content-type']));
    const cipher = this.opts.cipher;
    if (cipher && withholdUnencryptable(encoded)) {
      entry.counters.skipped.unencryptable = (entry.counters.skipped.unencryptable ?? 0) + 1;
      this.opts.metrics.skipped.inc({ flow: entry.config.name, reason: 'unencryptable' });
    }
    let partitionKey = entry.key?.extract({ body: encoded.bodyEncoding ? undefined : encoded.body, params: ex.params, query, headers: req.headers });
    if (partitionKey !== undefined && entry.key) partitionKey = this.protectKey(entry, partitionKey);
    if (partitionKey === undefined && entry.key) {
      entry.counters.keyMissing++;
      this.opts.metrics.keyMissing.inc({ flow: entry.config.name });
    }
    const target = search ? `${url.slice(0, q)}?${redactSearch(search, this.redactedQuery)}` : url;
    const headers = pickHeaders(req.headers, this.reqHeaders);
    const method = req.method ?? 'GET';
    // Until the event has its id (and its values their ciphertexts, bound to it), the sample masks them.
    ex.sample = callSample({ method, target, headers, body: cipher ? maskedBody(cipher, encoded) : encoded });
    return {
      traceparent,
      partitionKey,
      build: (id, mode, replyTo) => {
        const body = cipher ? { ...encoded, body: structuredClone(encoded.body) } : encoded;
        const kid = encryptBody(cipher, body, { eventId: id, part: 'request' });
        // After encryption: the sample shows the body exactly as the bus saw it (without a cipher, as above).
        if (cipher) ex.sample = callSample({ method, target, headers, body });
        return buildCallMessage({
          agent: this.opts.agent,
          flow: { name: entry.config.name, schemaVersion: entry.config.schemaVersion, mode },
          topic: entry.config.topic,
          id,
          traceparent,
          partitionKey,
          data: { ...body, params: ex.params, query },
          method,
          target,
          headers,
          replyTo,
          rpc: ex.rpc,
          ...(kid ? { kid } : {}),
        });
      },
    };
  }

  /**
   * Keys from encrypted body fields or redacted headers would leak the secret: publish a keyed digest.
   * Without a cipher there is no key to digest with (config validation refuses such a flow key), and an
   * unkeyed hash of a guessable secret is no protection: no key then.
   */
  private protectKey(entry: FlowEntry, key: string): string | undefined {
    const k = entry.key!;
    const secret = ((k.source === 'body' || k.source === 'rpc') && this.opts.cipher?.covers(k.path)) || (k.source === 'header' && this.deniedHeaders.has(k.path[0]!));
    if (!secret) return key;
    return this.opts.cipher?.digest(key);
  }
}

/** A copy of `encoded` with the configured fields shown as `[REDACTED]`. */
function maskedBody(cipher: FieldCipher, encoded: EncodedBody): EncodedBody {
  if (encoded.body === null || typeof encoded.body !== 'object') return encoded;
  const body = structuredClone(encoded.body);
  cipher.maskFields(body, REDACTED);
  return { ...encoded, body };
}
