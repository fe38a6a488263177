// The body codec is part of the event format, shared with the sidecar: it lives in src/events/body.ts.
export * from '../src/events/body.js';
