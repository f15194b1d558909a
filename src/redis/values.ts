/**
 * What a RESP reply becomes in JavaScript, for RESP2 and RESP3 alike.
 *
 *   +simple  -> string             :integer -> number (bigint beyond 2^53)   $bulk -> string or Buffer
 *   -error   -> RedisReplyError    !bulk error -> RedisReplyError            =verbatim -> VerbatimString
 *   *array   -> RespValue[]        %map -> Map       ~set -> Set             >push -> RespValue[] (apart)
 *   _null, $-1, *-1 -> null        #t/#f -> boolean  ,double -> number (Infinity, NaN) (big -> bigint
 *
 * Map keys and Set members are compared by identity for Buffers and arrays, so with `bulkAs: 'buffer'`
 * look them up by iterating.
 */

/** An error reply from the server (RESP `-` or RESP3 `!`). `code` is its first word: ERR, WRONGTYPE, NOSCRIPT... */
export class RedisReplyError extends Error {
  readonly code: string;

  constructor(message: string) {
    super(message);
    this.name = 'RedisReplyError';
    // RESP spec, "Simple errors": the first word up to the first space is the error kind, by convention.
    const space = message.indexOf(' ');
    this.code = space === -1 ? message : message.slice(0, space);
  }
}

/** RESP3 verbatim string: text with a three-letter format such as `txt` or `mkd`. */
export class VerbatimString {
  constructor(
    readonly format: string,
    readonly text: string | Buffer,
  ) {}

  toString(): string {
    return this.text.toString();
  }
}

export type RespValue =
  | string
  | Buffer
  | number
  | bigint
  | boolean
  | null
  | RedisReplyError
  | VerbatimString
  | RespValue[]
  | Map<RespValue, RespValue>
  | Set<RespValue>;
