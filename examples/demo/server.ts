import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SidecarHandle } from '../../proxy/sidecar.js';
import type { Logger } from '../../src/logger.js';

/**
 * What the demo serves after its scripted part, on one loopback port: the readiness report (HTML at `/`,
 * like the admin API's `GET /report.html`; JSON at `/report`; Markdown at `/report.md`) and `/flows`, every
 * sidecar's admin `/flows` in one answer.
 */

export interface ReportServerOptions {
  html: string;
  json: string;
  markdown: string;
  sidecars: readonly SidecarHandle[];
  /** Bearer token of the sidecars' admin APIs. */
  adminToken: string;
  logger: Logger;
}

export interface ReportServer {
  url: string;
  close(): Promise<void>;
}

async function sidecarFlows(sidecar: SidecarHandle, token: string): Promise<unknown> {
  const res = await fetch(`${sidecar.admin.url}/flows`, { headers: { authorization: `Bearer ${token}` } });
  return res.json();
}

export async function startReportServer(options: ReportServerOptions): Promise<ReportServer> {
  const send = (res: http.ServerResponse, status: number, type: string, body: string): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://demo.local').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'application/json', JSON.stringify({ error: { code: 'CUTOVER_NOT_FOUND', message: 'GET only' } }));
    if (path === '/' || path === '/report.html') return send(res, 200, 'text/html; charset=utf-8', options.html);
    if (path === '/report' || path === '/report.json') return send(res, 200, 'application/json', options.json);
    if (path === '/report.md') return send(res, 200, 'text/markdown; charset=utf-8', options.markdown);
    if (path === '/flows') {
      Promise.all(options.sidecars.map((s) => sidecarFlows(s, options.adminToken))).then(
        (all) => send(res, 200, 'application/json', JSON.stringify({ sidecars: all }, null, 2)),
        (err: unknown) => {
          options.logger.warn({ err }, 'reading the sidecars\u2019 flows failed');
          send(res, 502, 'application/json', JSON.stringify({ error: { code: 'CUTOVER_INTERNAL', message: 'a sidecar did not answer' } }));
        },
      );
      return;
    }
    send(res, 404, 'application/json', JSON.stringify({ error: { code: 'CUTOVER_NOT_FOUND', message: `nothing at ${path}: try /, /report, /report.md or /flows` } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
