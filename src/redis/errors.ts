/**
 * Errors the client itself raises (the server's error replies are RedisReplyError, in values.ts).
 *
 * `sent` tells a caller whether retrying is safe: false means the command never left this process;
 * true means it was written to the socket and Redis may have run it, so a blind retry could run it twice.
 */
export type RedisClientErrorCode =
  /** Not connected right now: the command was refused at once (see client.ts for why it is not queued). */
  | 'NOT_CONNECTED'
  /** The connection went down before the reply arrived. */
  | 'CONNECTION_LOST'
  /** No reply within the command's timeout; the reply will be read and discarded if it ever comes. */
  | 'TIMEOUT'
  /** Too many commands waiting for replies. */
  | 'QUEUE_FULL'
  /** close() was called. */
  | 'CLOSED'
  /** The server broke RESP, or the handshake got an answer that makes no sense. */
  | 'PROTOCOL';

export class RedisClientError extends Error {
  constructor(
    readonly code: RedisClientErrorCode,
    message: string,
    readonly sent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RedisClientError';
  }
}
