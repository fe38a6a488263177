import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { parse as parseUrl } from 'node:url';
import { createProxyMiddleware, type Options, type Plugin, type RequestHandler } from 'http-proxy-middleware';
import type { RouteConfig } from '../src/config/sidecar.js';

/** One upstream: its proxy middleware and keep-alive agent. */
export interface Upstream {
  url: string;
  proxy: RequestHandler;
  agent: http.Agent;
}

/** What {@link Upstreams} is made from: the `upstream` and `routes` config, and the data plane's proxy events. */
export interface UpstreamsOptions {
  /** The default upstream, for requests no route takes. */
  upstream: string | undefined;
  routes: readonly RouteConfig[];
  upstreamIdleTimeout: number;
  /** The http-proxy event handlers of the data plane, registered on every upstream's proxy. */
  plugin: Plugin;
}

interface Route {
  host: string | undefined;
  prefix: string | undefined;
  upstream: Upstream;
}

/**
 * Where requests go: the configured routes (by host and path prefix, first match wins), then the default
 * upstream. Routes naming the same URL share one proxy and one keep-alive agent.
 */
export class Upstreams {
  private readonly routes: Route[];
  private readonly fallback: Upstream | undefined;
  private readonly all: Upstream[] = [];
  private readonly opts: UpstreamsOptions;

  constructor(options: UpstreamsOptions) {
    this.opts = options;
    const byUrl = new Map<string, Upstream>();
    const upstreamFor = (url: string): Upstream => {
      let u = byUrl.get(url);
      if (!u) {
        u = this.create(url);
        byUrl.set(url, u);
        this.all.push(u);
      }
      return u;
    };
    this.routes = options.routes.map((r) => ({ host: r.host, prefix: r.prefix, upstream: upstreamFor(r.upstream) }));
    this.fallback = options.upstream ? upstreamFor(options.upstream) : undefined;
  }

  /** The upstream for a request to `path`, or undefined when no route takes it and there is no default. */
  resolve(req: IncomingMessage, path: string): Upstream | undefined {
    if (this.routes.length > 0) {
      const host = (req.headers.host ?? '').toLowerCase();
      for (const r of this.routes) {
        if (r.host !== undefined && r.host !== host && r.host !== host.replace(/:\d+$/, '')) continue;
        if (r.prefix !== undefined && !path.startsWith(r.prefix)) continue;
        return r.upstream;
      }
    }
    return this.fallback;
  }

  /** Closes the upstream keep-alive sockets. */
  destroyAgents(): void {
    for (const u of this.all) u.agent.destroy();
  }

  private create(url: string): Upstream {
    const isHttps = url.startsWith('https:');
    const agentOptions = { keepAlive: true, maxFreeSockets: 256, timeout: this.opts.upstreamIdleTimeout, scheduling: 'lifo' as const };
    const agent = isHttps ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    const proxy = createProxyMiddleware(proxyOptions(url, agent, this.opts.plugin));
    return { url, proxy, agent };
  }
}

/** The http-proxy-middleware options of one upstream: every request forwarded as sent, `plugin` handling the events. */
export function proxyOptions(url: string, agent: http.Agent, plugin: Plugin): Options {
  return {
    // Parsed once here: http-proxy would parse a string target again on every request.
    target: parseUrl(url),
    agent,
    // Everything is forwarded: the default filter takes only paths starting with `/` and would hand
    // `OPTIONS *` (a request about the server as a whole) back as an error.
    pathFilter: () => true,
    // Forward the request as the caller sent it and the response as the agent sent it.
    changeOrigin: false,
    xfwd: false,
    preserveHeaderKeyCase: true,
    // Our own plugin replaces the defaults (console logging, HTML error pages).
    ejectPlugins: true,
    plugins: [plugin],
  };
}
