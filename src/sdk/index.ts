/** The agent SDK: AgentBus plus the dedupe stores it (and the shadow side) use. */
export { AgentBus, REPLY_EVENT_TYPE, isSchemaUnsupported } from './agent-bus.js';
export type { AgentBusOptions, AgentHandler, AgentSubscribeOptions, HandlerContext, PublishOptions, ReplyOptions } from './agent-bus.js';
export { createDedupeStore, MemoryDedupeStore, RedisDedupeStore, SqliteDedupeStore, DEDUPE_FILE } from '../handling/dedupe/index.js';
export type { ClaimResult, DedupeChoice, DedupeStore } from '../handling/dedupe/index.js';
export { nonRetriable, isNonRetriable } from '../bus/attempts.js';
