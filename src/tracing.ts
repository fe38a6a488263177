import { ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Span, type SpanContext } from '@opentelemetry/api';

/**
 * OpenTelemetry spans through `@opentelemetry/api` only: users register their own SDK (a tracer provider
 * with their exporter) and cutover's spans join their traces. Without an SDK no span is made: every helper
 * here returns undefined and the callers do nothing more, so tracing costs one look-up of the global tracer
 * provider per span.
 *
 * Spans are linked through the `traceparent` of the events: the sidecar's call event carries its publish
 * span, so the shadow delivery, the replay and a bus-native handler are its children on the other side of
 * the bus; the direct observation carries it too, so the comparator's decision joins the same trace.
 */
export { SpanKind };
export type { Span };

const TRACER_NAME = 'cutover';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The remote span context a W3C `traceparent` names; undefined when it is absent or malformed. */
export function spanContextOf(traceparent: string | undefined): SpanContext | undefined {
  const m = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  if (!m) return undefined;
  const context: SpanContext = { traceId: m[1]!, spanId: m[2]!, traceFlags: Number.parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true };
  return trace.isSpanContextValid(context) ? context : undefined;
}

/** The `traceparent` of a span, for the events it causes. */
export function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-0${(c.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** Whether an SDK is registered: without one nothing is parsed, created or recorded. */
export function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer(TRACER_NAME) !== undefined;
}

/**
 * Starts a span under `parent` (a span of this process, or the `traceparent` of an event or request);
 * undefined when no SDK records it.
 */
export function startSpan(name: string, kind: SpanKind, parent: Span | string | undefined, attributes?: Attributes): Span | undefined {
  if (!tracing()) return undefined;
  let context = ROOT_CONTEXT;
  if (typeof parent === 'string') {
    const remote = spanContextOf(parent);
    if (remote) context = trace.setSpanContext(ROOT_CONTEXT, remote);
  } else if (parent) context = trace.setSpan(ROOT_CONTEXT, parent);
  const span = trace.getTracer(TRACER_NAME).startSpan(name, { kind, ...(attributes ? { attributes } : {}) }, context);
  if (span.isRecording()) return span;
  return undefined;
}

/** Ends a span, marking it failed with `error` when given. */
export function endSpan(span: Span | undefined, error?: unknown, attributes?: Attributes): void {
  if (!span) return;
  if (attributes) span.setAttributes(attributes);
  if (error !== undefined) {
    const err = error instanceof Error ? error : new Error(String(error));
    span.recordException(err);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
  }
  span.end();
}

/**
 * Runs `fn` inside a span (ended when it settles, failed when it rejects); `fn` gets the span, or undefined
 * without an SDK, and then runs exactly as if called directly.
 */
export function inSpan<T>(name: string, kind: SpanKind, parent: Span | string | undefined, attributes: Attributes, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  const span = startSpan(name, kind, parent, attributes);
  if (!span) return fn(undefined);
  return fn(span).then(
    (result) => {
      endSpan(span);
      return result;
    },
    (err: unknown) => {
      endSpan(span, err);
      throw err;
    },
  );
}
