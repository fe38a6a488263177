import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../logger.js';

/** What the caller injects into an adapter besides its config. */
export interface CreateBusOptions {
  logger?: Logger;
  /**
   * Opens a TCP connection to a broker (Kafka only; default `net.connect`). Tests use it to inject faults
   * at the connection layer, since Kafka clients reconnect to the addresses the broker advertises.
   */
  connect?: (host: string, port: number) => Socket;
  /** Where adapters register broker-side metrics of their own (RabbitMQ: partition depth, group size, redeliveries). */
  registry?: Registry;
}
