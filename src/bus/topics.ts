import { ErrorCodes, ValidationError } from '../errors.js';
import type { SubscribeOptions } from './types.js';

/** Kafka's limits are the strictest of the three buses, so every adapter applies them. */
export const TOPIC_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
export const MAX_TOPIC_LENGTH = 249;
export const DLQ_SUFFIX = '.dlq';

/** Throws CUTOVER_TOPIC_INVALID unless `topic` is a concrete topic name (no wildcards). */
export function assertTopicName(topic: string, field = 'topic'): void {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH || !TOPIC_NAME.test(topic)) {
    throw new ValidationError(
      ErrorCodes.TOPIC_INVALID,
      `${field}: ${JSON.stringify(topic)} is not a topic name (dot-separated levels of letters, digits, _ or -, at most ${MAX_TOPIC_LENGTH} characters)`,
    );
  }
}

export function isPattern(topicOrPattern: string): boolean {
  return topicOrPattern.split('.').some((level) => level === '*' || level === '#');
}

/** Throws CUTOVER_TOPIC_INVALID unless `pattern` is a topic name or a valid `*` / `#` pattern. */
export function assertTopicPattern(pattern: string, field = 'topics'): void {
  if (!isPattern(pattern)) return assertTopicName(pattern, field);
  const levels = pattern.split('.');
  levels.forEach((level, i) => {
    const ok = level === '*' || (level === '#' && i === levels.length - 1) || /^[A-Za-z0-9_-]+$/.test(level);
    if (!ok) {
      throw new ValidationError(
        ErrorCodes.TOPIC_INVALID,
        `${field}: ${JSON.stringify(pattern)} is not a topic pattern (levels are names, * for one level, or # as the last level for the rest)`,
      );
    }
  });
}

/**
 * Compiles a pattern into a predicate. `*` matches exactly one level, `#` zero or more trailing levels.
 * A wildcard never matches a dead-letter topic unless the pattern itself ends in `.dlq`: otherwise a
 * subscriber on `commands.#` would consume its own dead letters and loop.
 */
export function topicMatcher(pattern: string): (topic: string) => boolean {
  if (!isPattern(pattern)) return (topic) => topic === pattern;
  const wantsDlq = pattern.endsWith(DLQ_SUFFIX);
  const source = pattern
    .split('.')
    .map((level, i) => {
      if (level === '*') return (i === 0 ? '' : '\\.') + '[^.]+';
      if (level === '#') return i === 0 ? '.*' : '(?:\\..+)?';
      return (i === 0 ? '' : '\\.') + level.replace(/[-]/g, '\\-');
    })
    .join('');
  const re = new RegExp(`^${source}$`);
  return (topic) => re.test(topic) && (wantsDlq || !topic.endsWith(DLQ_SUFFIX));
}

/** Predicate over a subscription's topic list (names and patterns). */
export function topicsMatcher(patterns: readonly string[]): (topic: string) => boolean {
  const matchers = patterns.map(topicMatcher);
  return (topic) => matchers.some((m) => m(topic));
}

export function dlqTopic(topic: string): string {
  return topic + DLQ_SUFFIX;
}

/** The naming convention of the design: facts, commands, telemetry, and the toolkit's own topics. */
const CONVENTION: Array<{ prefix: string; re: RegExp; shape: string }> = [
  { prefix: 'events.', re: /^events\.[a-z0-9_-]+\.[a-z0-9_.-]+$/, shape: 'events.<domain>.<fact>' },
  { prefix: 'commands.', re: /^commands\.agent\.[a-z0-9_-]+\.[a-z0-9_.-]+$/, shape: 'commands.agent.<agent>.<action>' },
  { prefix: 'metrics.', re: /^metrics\.agent\.[a-z0-9_-]+\.[a-z0-9_.-]+$/, shape: 'metrics.agent.<agent>.<name>' },
  { prefix: 'cutover.', re: /^cutover\.[a-z0-9_.-]+$/, shape: 'cutover.<name>' },
];

/**
 * Returns a problem description when `topic` breaks the naming convention, undefined when it follows it.
 * Used by config validation; the bus itself accepts any valid name (tests use `test.<uuid>`).
 */
export function conventionProblem(topic: string): string | undefined {
  const rule = CONVENTION.find((c) => topic.startsWith(c.prefix));
  if (!rule) return `expected a topic under events., commands., metrics. or cutover., got ${JSON.stringify(topic)}`;
  if (!rule.re.test(topic)) return `expected ${rule.shape} in lowercase, got ${JSON.stringify(topic)}`;
  return undefined;
}

/**
 * Checks subscribe() options before anything is joined: CUTOVER_TOPIC_INVALID for the topic list (naming
 * `topics[i]`), CUTOVER_CONFIG_INVALID naming any other bad field.
 */
export function validateSubscribe(options: SubscribeOptions): void {
  const bad = (message: string): never => {
    throw new ValidationError(ErrorCodes.CONFIG_INVALID, `subscribe: ${message}`);
  };
  if (typeof options?.group !== 'string' || options.group.length === 0) bad('group: expected a non-empty string');
  if (!Array.isArray(options.topics) || options.topics.length === 0) throw new ValidationError(ErrorCodes.TOPIC_INVALID, 'subscribe: topics: expected at least one topic or pattern');
  options.topics.forEach((t, i) => assertTopicPattern(t, `topics[${i}]`));
  if (typeof options.handler !== 'function') bad('handler: expected a function');
  if (options.concurrency !== undefined && (!Number.isInteger(options.concurrency) || options.concurrency < 1)) bad('concurrency: expected an integer >= 1');
  if (options.maxAttempts !== undefined && (!Number.isInteger(options.maxAttempts) || options.maxAttempts < 1)) bad('maxAttempts: expected an integer >= 1');
}
