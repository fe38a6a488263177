import http from 'node:http';

/** A response as the caller saw it: status, raw header lines, body bytes. */
export interface RawResponse {
  status: number;
  statusMessage: string;
  /** [name, value, name, value, ...] exactly as received (case and order kept). */
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  agent?: http.Agent;
}

/** One HTTP request with node:http, keeping the response exactly as it arrived. */
export function request(baseUrl: string, req: RawRequest): Promise<RawResponse> {
  const url = new URL(req.path, baseUrl);
  return new Promise((resolve, reject) => {
    const r = http.request(
      { host: url.hostname, port: url.port, method: req.method ?? 'GET', path: url.pathname + url.search, headers: req.headers, agent: req.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, statusMessage: res.statusMessage ?? '', rawHeaders: res.rawHeaders, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(req.body);
  });
}

/** Raw headers without the ones that legitimately differ between two responses (Date). */
export function comparableHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'date') continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
