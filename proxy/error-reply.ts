import { STATUS_CODES, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ErrorCodes } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import type { Exchange } from './exchange.js';
import { rpcError } from '../src/flows/rpc.js';
import type { SidecarMetrics } from './metrics.js';
import type { RedactConfig } from '../src/config/sidecar.js';
import { redactSearch } from './redact.js';

function errorBody(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ error: { code, message } }));
}

/**
 * The error body for `ex`'s caller: a JSON-RPC caller (the call was read, `ex.rpc`) gets a JSON-RPC error
 * response with its id, the cutover code in `error.data.code`, which its client library parses whatever
 * the HTTP status; others the typed JSON error.
 */
function errorBodyFor(ex: Exchange | undefined, code: string, message: string): Buffer {
  return ex?.rpc ? Buffer.from(JSON.stringify(rpcError(ex.rpc.id, code, message))) : errorBody(code, message);
}

function sendJson(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

/**
 * Answers a connection the HTTP server handed over (an upgrade request) with a typed JSON error, if
 * nothing was written to it yet, and closes it.
 */
export function sendRawError(socket: Socket, status: number, code: string, message: string): void {
  if (socket.writable && socket.bytesWritten === 0) {
    const body = errorBody(code, message);
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body.toString()}`);
  }
  socket.destroySoon();
}

/** Answers the caller with a typed JSON error (JSON-RPC for JSON-RPC callers), recorded on `ex` for the direct observation. */
export function sendError(ex: Exchange, res: ServerResponse, status: number, code: string, message: string): void {
  const body = errorBodyFor(ex, code, message);
  ex.failure = { code, message, body };
  sendJson(res, status, body);
}

/** What {@link UpstreamErrors} needs to answer, count and log upstream failures. */
export interface UpstreamErrorsOptions {
  /** How long the upstream may take to send its response headers. */
  upstreamTimeout: number;
  /** `redact.query`: these query values are masked in logs too. */
  redact: RedactConfig;
  metrics: SidecarMetrics;
  logger: Logger;
}

/**
 * The answers the sidecar gives in the upstream's stead when it fails: 502 when it cannot be reached,
 * 504 when it sends no response in time. Each is counted, and recorded on the exchange so the direct
 * observation says what the caller got.
 */
export class UpstreamErrors {
  private readonly opts: UpstreamErrorsOptions;
  private readonly redactedQuery: ReadonlySet<string>;

  constructor(options: UpstreamErrorsOptions) {
    this.opts = options;
    this.redactedQuery = new Set(options.redact.query);
  }

  /** The upstream could not be reached or dropped the connection: 502, unless the caller was answered already. */
  failed(ex: Exchange | undefined, req: IncomingMessage, res: ServerResponse | Socket, err: Error): void {
    if (ex?.timer) {
      clearTimeout(ex.timer);
      ex.timer = undefined;
    }
    if (ex?.failure) return; // already answered (timeout)
    const code = ErrorCodes.UPSTREAM_UNREACHABLE;
    const errno = (err as NodeJS.ErrnoException).code;
    const message = `upstream unreachable: ${errno ?? err.message}`;
    if (ex) {
      ex.failure = { code, message, body: errorBodyFor(ex, code, message) };
      if (ex.entry) ex.entry.counters.upstreamErrors++;
    }
    this.opts.metrics.upstreamErrors.inc({ code });
    this.opts.logger.warn({ err: errno ?? err.message, method: req.method, url: this.loggableUrl(req.url), eventId: ex?.id }, 'upstream failed; answered 502');
    if ('writeHead' in res) {
      if (!res.headersSent) sendJson(res, 502, ex?.failure?.body ?? errorBody(code, message));
      else res.destroy();
    } else {
      sendRawError(res, 502, code, message);
    }
  }

  /**
   * An upgrade request sent upstream: no answer (101 or any response) within `upstreamTimeout` is a 504,
   * as for any other request. Once upgraded, the tunnel has no timeout: long silences are normal there.
   */
  awaitUpgrade(proxyReq: ClientRequest, req: IncomingMessage, socket: Socket): void {
    const timer = setTimeout(() => {
      const code = ErrorCodes.UPSTREAM_TIMEOUT;
      this.opts.metrics.upstreamErrors.inc({ code });
      this.opts.logger.warn({ method: req.method, url: this.loggableUrl(req.url) }, 'upstream did not answer an upgrade in time; answered 504');
      proxyReq.destroy();
      sendRawError(socket, 504, code, `upstream sent no response within ${this.opts.upstreamTimeout} ms`);
    }, this.opts.upstreamTimeout);
    const answered = (): void => clearTimeout(timer);
    proxyReq.once('upgrade', answered);
    proxyReq.once('response', answered);
    proxyReq.once('close', answered);
    socket.once('close', answered);
  }

  /**
   * The upstream dropped the connection after its response headers, so the caller already has a status
   * and part of a body: its connection is destroyed, as it would be without the sidecar, instead of being
   * left waiting for the rest.
   */
  aborted(ex: Exchange, req: IncomingMessage, res: ServerResponse): void {
    if (ex.failure || res.destroyed) return; // answered already, or the caller left first
    const code = ErrorCodes.UPSTREAM_ABORTED;
    const message = `upstream closed the connection in the middle of a ${res.statusCode} response`;
    ex.failure = { code, message };
    if (ex.entry) ex.entry.counters.upstreamErrors++;
    this.opts.metrics.upstreamErrors.inc({ code });
    this.opts.logger.warn({ method: req.method, url: this.loggableUrl(req.url), status: res.statusCode, eventId: ex.id }, 'upstream aborted its response; cutting the caller connection');
    res.destroy();
  }

  /** No response headers within `upstreamTimeout`: 504, and the upstream request is abandoned. */
  timedOut(ex: Exchange): void {
    ex.timer = undefined;
    const res = ex.res;
    const message = `upstream sent no response within ${this.opts.upstreamTimeout} ms`;
    const body = errorBodyFor(ex, ErrorCodes.UPSTREAM_TIMEOUT, message);
    ex.failure = { code: ErrorCodes.UPSTREAM_TIMEOUT, message, body };
    this.opts.metrics.upstreamErrors.inc({ code: ErrorCodes.UPSTREAM_TIMEOUT });
    if (ex.entry) ex.entry.counters.upstreamErrors++;
    if (res && !res.headersSent) sendJson(res, 504, body);
    ex.proxyReq?.destroy();
  }

  /** The request URL for logs, with the query values named in `redact.query` masked. */
  private loggableUrl(url: string | undefined): string {
    const u = url ?? '/';
    const q = u.indexOf('?');
    return q === -1 ? u : `${u.slice(0, q)}?${redactSearch(u.slice(q + 1), this.redactedQuery)}`;
  }
}
