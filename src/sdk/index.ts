/** The agent SDK: AgentBus plus the dedupe stores it (and the shadow side) use. */
export { AgentBus, REPLY_EVENT_TYPE, isSchemaUnsupported } from './agent-bus.js';
export type { AgentBusOptions, AgentHandler, AgentSubscribeOptions, HandlerContext, PublishOptions, ReplyOptions } from './agent-bus.js';
export { createDedupeStore, MemoryDedupeStore, RedisDedupeStore, SqliteDedupeStore, DEDUPE_FILE } from '../handling/dedupe/index.js';
export type { ClaimResult, DedupeChoice, DedupeStore } from '../handling/dedupe/index.js';
export { nonRetriable, isNonRetriable } from '../bus/attempts.js';
export { loadSigner, loadTrust, signEvent, verifyEvent, SignatureAttributes } from '../events/signature.js';
export type { Signer, Trust, Rejection } from '../events/signature.js';
