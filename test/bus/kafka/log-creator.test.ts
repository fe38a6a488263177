import { Writable } from 'node:stream';
import { logLevel } from 'kafkajs';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { kafkaLogCreator } from '../../../src/bus/kafka/client.js';

function capture() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

describe('kafkajs log lines through pino', () => {
  it('keeps real errors at error, and turns retried connection attempts and existing-topic answers into debug', () => {
    const { logger, lines } = capture();
    const log = kafkaLogCreator(logger)();
    log({ namespace: 'Connection', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Connection error: connect ECONNREFUSED 127.0.0.1:9', timestamp: 'x' } });
    log({ namespace: 'BrokerPool', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Failed to connect to seed broker, trying another broker from the list', timestamp: 'x' } });
    log({ namespace: 'Connection', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Response CreateTopics(key: 19, version: 3)', error: 'Topic creation errors', timestamp: 'x' } });
    log({ namespace: 'Consumer', level: logLevel.ERROR, label: 'ERROR', log: { message: 'Crash: KafkaJSNumberOfRetriesExceeded', timestamp: 'x' } });
    expect(lines.map((l) => [l.level, l.msg.split(':')[0]])).toEqual([
      [20, 'Connection error'],
      [20, 'Failed to connect to seed broker, trying another broker from the list'],
      [20, 'Response CreateTopics(key'],
      [50, 'Crash'],
    ]);
  });
});
