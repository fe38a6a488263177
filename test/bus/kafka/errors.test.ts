import { AuthenticationError, MultipleErrors, NetworkError, ResponseError, TimeoutError } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { isUnreachable, toBusError } from '../../../src/bus/kafka/errors.js';
import { ErrorCodes } from '../../../src/errors.js';

// How kafkajs protocol errors from a cluster that cannot satisfy the replication settings are typed. The
// replication factor case runs on a real broker in kafka-bus.test.ts; the others need a cluster losing nodes.
const brokers = ['k1:9092', 'k2:9092', 'k3:9092'];
const protocolError = (type: string, message: string, retriable: boolean) => Object.assign(new Error(message), { name: 'KafkaJSProtocolError', type, retriable });

describe('kafka errors: replication', () => {
  it('a replication factor above the live brokers is a misconfiguration naming bus.replicationFactor', () => {
    const err = toBusError(protocolError('INVALID_REPLICATION_FACTOR', 'Replication-factor is invalid', false), 'create topic t', brokers);
    expect(err).toMatchObject({ code: ErrorCodes.BUS_MISCONFIGURED, retriable: false });
    expect(err.message).toContain('bus.replicationFactor');
  });

  it('a topic setting the cluster refuses is a misconfiguration naming both settings', () => {
    const err = toBusError(protocolError('INVALID_CONFIG', 'min.insync.replicas must be <= replicas', false), 'create topic t', brokers);
    expect(err).toMatchObject({ code: ErrorCodes.BUS_MISCONFIGURED });
    expect(err.message).toMatch(/bus\.replicationFactor.*bus\.minInsyncReplicas/);
  });

  it.each(['NOT_ENOUGH_REPLICAS', 'NOT_ENOUGH_REPLICAS_AFTER_APPEND'])('%s (too few replicas in sync) is a retriable CUTOVER_BUS_UNAVAILABLE, also behind kafkajs retry wrappers', (type) => {
    const cause = protocolError(type, 'Messages are rejected since there are fewer in-sync replicas than required', true);
    const wrapped = Object.assign(new Error('retries exceeded'), { name: 'KafkaJSNumberOfRetriesExceeded', cause });
    const err = toBusError(wrapped, 'publish to t', brokers);
    expect(err).toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE, retriable: true });
    expect(err.message).toContain('min.insync.replicas');
  });
});

// The same typing for what @platformatic/kafka (bus.client.producer: platformatic) throws: its own error
// classes, built as the client builds them (a produce response with per-partition error codes, wrapped the
// way a send to several brokers wraps it).
describe('kafka errors: @platformatic/kafka', () => {
  const produceResponse = (code: number) => new ResponseError(0, 9, { '/topics/0/partitions/0': [code, null] }, {});
  const wrapped = (err: Error) => new MultipleErrors('Producing messages failed.', [err]);

  it('a topic authorization failure is a final CUTOVER_BUS_REJECTED, not resent', () => {
    const err = toBusError(wrapped(produceResponse(29)), 'publish to t', brokers);
    expect(err).toMatchObject({ code: ErrorCodes.BUS_REJECTED, retriable: false });
    expect(err.message).toContain('TOPIC_AUTHORIZATION_FAILED');
  });

  it('a leader change is a retriable CUTOVER_BUS_TIMEOUT', () => {
    expect(toBusError(wrapped(produceResponse(6)), 'publish to t', brokers)).toMatchObject({ code: ErrorCodes.BUS_TIMEOUT, retriable: true });
  });

  it('too few replicas in sync is a retriable CUTOVER_BUS_UNAVAILABLE naming min.insync.replicas', () => {
    const err = toBusError(produceResponse(19), 'publish to t', brokers);
    expect(err).toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE, retriable: true });
    expect(err.message).toContain('min.insync.replicas');
  });

  it('a refused or timed-out connection means the brokers are unreachable; a request timing out on an open one is a timeout', () => {
    const refused = new NetworkError('Connection to k1:9092 failed.', { cause: Object.assign(new Error('connect ECONNREFUSED k1:9092'), { code: 'ECONNREFUSED' }) });
    expect(isUnreachable(refused)).toBe(true);
    expect(toBusError(refused, 'producer connect', brokers)).toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE, retriable: true });
    expect(toBusError(new TimeoutError('Connection to k1:9092 timed out.'), 'producer connect', brokers)).toMatchObject({ code: ErrorCodes.BUS_UNAVAILABLE });
    const slow = new TimeoutError('Request timed out');
    expect(isUnreachable(slow)).toBe(false);
    expect(toBusError(wrapped(slow), 'publish to t', brokers)).toMatchObject({ code: ErrorCodes.BUS_TIMEOUT, retriable: true });
  });

  it('a failed SASL authentication is a final refusal', () => {
    expect(toBusError(new AuthenticationError('SASL authentication failed.'), 'producer connect', brokers)).toMatchObject({ code: ErrorCodes.BUS_REJECTED, retriable: false });
  });
});
