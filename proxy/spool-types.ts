import type { BusMessage } from '../src/bus/types.js';

/** One spooled message: its publish sequence number, its topic and the message itself. */
export interface SpoolRecord {
  seq: number;
  topic: string;
  message: BusMessage;
  /** Set while the record is in the outbox's journal and not settled yet; never written to disk. */
  journaled?: boolean;
}
