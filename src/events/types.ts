/**
 * A CloudEvent 1.0 in structured JSON mode, as cutover puts it on every bus.
 * Extension attribute names are lowercase alphanumerics (the spec forbids underscores).
 */
export interface CloudEvent<T = unknown> {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time?: string;
  datacontenttype?: string;
  dataschema?: string;
  subject?: string;
  data?: T;
  /** Base64 payload for binary data (CloudEvents JSON format `data_base64`). */
  data_base64?: string;
  /** schema version of `data`, semver-like (`1`, `1.2`, `2.0.0`). */
  schemaversion?: string;
  correlationid?: string;
  /** The id of the event this one answers (bus replies). */
  causationid?: string;
  replyto?: string;
  partitionkey?: string;
  /** W3C trace context. */
  traceparent?: string;
  cutoverflow?: string;
  cutovermode?: string;
  [extension: string]: unknown;
}

/** The content type of a structured-mode CloudEvent on the wire. */
export const CLOUDEVENTS_JSON = 'application/cloudevents+json';
