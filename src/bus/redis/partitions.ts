/** One partition of a topic as a consumer group sees it: its stream and the group's lease key for it. */
export interface PartitionRef {
  topic: string;
  partition: number;
  stream: string;
  lease: string;
}

/** A partition this consumer holds the lease of. A new object per acquisition. */
export interface Owned {
  ref: PartitionRef;
  /** Entries dispatched and not yet acknowledged (the sweep leaves them alone). */
  inflight: Set<string>;
  /** Being given back: no more reads; the lease goes once inflight is empty. */
  releasing: boolean;
  /** Its backlog was claimed and queued: new entries may be read. */
  ready: boolean;
  /** Local deadline of the lease (set from the time the last renewal was sent). */
  validUntil: number;
}

/** What the parts of a subscription share about who it is. */
export interface Member {
  group: string;
  consumer: string;
}

/** Hands one stream entry of an owned partition to the handlers (or to the DLQ when it does not decode). */
export type Dispatch = (state: Owned, id: string, fields: readonly string[], attempt: number) => void;
