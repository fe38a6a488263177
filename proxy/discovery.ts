import { mkdirSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { ObserveConfig } from '../src/config/observe.js';
import { DiscoveryRecorder, type DiscoverySummary } from '../src/discovery/recorder.js';
import type { Logger } from '../src/logger.js';
import { CutoverError, ErrorCodes } from '../src/errors.js';
import type { Exchange } from './exchange.js';
import { ObservedExchange } from './observed-exchange.js';

/** Where a sidecar keeps its discovery summary: `<dataDir>/discovery/<agent>.json`. */
export function discoveryFile(dataDir: string, agent: string): string {
  return path.join(dataDir, 'discovery', `${agent}.json`);
}

/**
 * Reads a discovery summary written by a sidecar: CUTOVER_NOT_FOUND naming the file when it is missing or
 * is not one (wrong format or agent).
 */
export function readDiscoverySummary(file: string): DiscoverySummary {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CutoverError(ErrorCodes.NOT_FOUND, `no discovery summary at ${file}: set observe: in the sidecar's config and let traffic pass (${(err as Error).message})`, { cause: err });
  }
  let summary: Partial<DiscoverySummary> | undefined;
  try {
    summary = JSON.parse(text) as Partial<DiscoverySummary>;
  } catch (err) {
    throw new CutoverError(ErrorCodes.NOT_FOUND, `${file} is not a discovery summary: ${(err as Error).message}`, { cause: err });
  }
  if (summary?.format !== 'cutover.discovery/1' || typeof summary.agent !== 'string' || !Array.isArray(summary.candidates)) {
    throw new CutoverError(ErrorCodes.NOT_FOUND, `${file} is not a discovery summary (format: expected cutover.discovery/1 with agent and candidates)`);
  }
  return summary as DiscoverySummary;
}

export interface DiscoveryOptions {
  agent: string;
  dataDir: string;
  config: ObserveConfig;
  logger: Logger;
  /** Sampling draw (tests); default Math.random. */
  random?: () => number;
}

/**
 * Discovery in the sidecar: samples the calls it forwards (matched to a flow or not), records them into
 * candidate flows, and keeps the summary in the data dir. Nothing reaches the bus: bodies can hold what
 * redaction would drop, so they stay on the sidecar's disk, readable by `cutover discover` and the admin API.
 */
export class Discovery {
  private readonly opts: DiscoveryOptions;
  private readonly recorder: DiscoveryRecorder;
  private readonly file: string;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(options: DiscoveryOptions) {
    this.opts = options;
    this.random = options.random ?? Math.random;
    this.file = discoveryFile(options.dataDir, options.agent);
    const { maxTemplates, maxSamples, foldAfter } = options.config;
    this.recorder = new DiscoveryRecorder({ agent: options.agent, maxTemplates, maxSamples, foldAfter }, this.previous());
  }

  /** Writes the summary every `observe.writeInterval`. */
  start(): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    this.timer = setInterval(() => void this.write(), this.opts.config.writeInterval);
    this.timer.unref();
  }

  /** Stops the timer and writes the summary one last time. Idempotent. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.dirty = true;
    await this.write();
  }

  summary(): DiscoverySummary {
    return this.recorder.current();
  }

  /** A request arrived: sampled ones carry an {@link ObservedExchange} until their response ends. */
  begin(ex: Exchange, req: IncomingMessage, path: string): void {
    if (this.random() >= this.opts.config.sample) {
      this.recorder.seen();
      this.dirty = true;
      return;
    }
    ex.discovery = new ObservedExchange(req.method ?? 'GET', path, req.headers['idempotency-key'] !== undefined, this.opts.config.maxBodyBytes);
  }

  /** The exchange is over: record what was seen (calls the caller abandoned say nothing of the agent). */
  end(ex: Exchange, res: ServerResponse): void {
    const seen = ex.discovery;
    if (!seen) return;
    ex.discovery = undefined;
    if (!res.writableFinished) return;
    try {
      this.recorder.record({
        method: seen.method,
        path: seen.path,
        status: res.statusCode,
        latencyMs: ex.elapsed,
        request: seen.request?.buffer(),
        requestTruncated: seen.request?.overLimit === true,
        response: seen.response?.buffer(),
        responseTruncated: seen.response?.overLimit === true || String(res.getHeader('content-encoding') ?? 'identity') !== 'identity',
        flow: ex.entry?.config.name,
        idempotencyKey: seen.idempotencyKey,
      });
      this.dirty = true;
    } catch (err) {
      // Discovery must never touch the direct call.
      this.opts.logger.warn({ err }, 'discovery could not record a call');
    }
  }

  private previous(): DiscoverySummary | undefined {
    try {
      return readDiscoverySummary(this.file);
    } catch {
      // No summary yet, or an unreadable one: start afresh (it is rebuilt from traffic).
      return undefined;
    }
  }

  /** One write at a time, to a temporary file renamed over the summary: a reader never sees half of one. */
  private write(): Promise<void> {
    if (!this.dirty) return this.writing;
    this.dirty = false;
    this.writing = this.writing.then(async () => {
      const tmp = `${this.file}.tmp`;
      try {
        mkdirSync(path.dirname(this.file), { recursive: true });
        await writeFile(tmp, JSON.stringify(this.recorder.current()));
        await rename(tmp, this.file);
      } catch (err) {
        this.opts.logger.warn({ err, file: this.file }, 'could not write the discovery summary');
      }
    });
    return this.writing;
  }
}
