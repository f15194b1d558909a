/**
 * A Redis client on Node.js core alone: RESP2 and RESP3, pipelining, timeouts, reconnects, pub/sub,
 * scripts. It knows nothing of the chat.
 */
export { RedisClient, type ClientState, type RedisClientEvents, type RedisClientOptions } from './client';
export { RedisSubscriber, type RedisSubscriberEvents } from './subscriber';
export type { CommandOptions } from './connection';
export { RedisClientError, type RedisClientErrorCode } from './errors';
export { RedisScript } from './script';
export { RedisReplyError, VerbatimString, type RespValue } from './values';
export { RespParser, type RespHandler, type RespParserOptions } from './resp-parser';
export { encodeCommand, type RedisArg } from './resp-writer';
export { parseRedisUrl, maskPassword, RedisUrlError, DEFAULT_PORT, type RedisAddress } from './url';
export { Backoff, type BackoffOptions } from './backoff';
export { RedisStats, LatencyHistogram, LATENCY_BUCKETS_MS } from './stats';
