/**
 * Plain counters of the connections that share one stats object (a server's), for whoever exports
 * metrics (no metrics library here: a field incremented where it happens). They only ever grow.
 */

/** Why this layer dropped a peer, one counter each. */
export class WebSocketDrops {
  /** Unsent bytes above maxBufferedBytes: the peer does not read (closed 1008, destroyed). */
  bufferFull = 0;
  /** No pong (or anything) within pongTimeoutMs. */
  heartbeat = 0;
  /** Failed with 1002 (a malformed frame), 1007 (bad UTF-8 or compressed data), 1009 (too big). */
  protocolError = 0;
  invalidPayload = 0;
  tooBig = 0;
  /** The peer did not answer our close frame within closeTimeoutMs: the socket was destroyed. */
  closeTimeout = 0;
}

export class WebSocketStats {
  /** Connections opened (handshake completed) and closed (TCP gone): open = opened - closed. */
  opened = 0;
  closed = 0;
  /** Whole data messages read, and written (text and binary; control frames not counted). */
  messagesIn = 0;
  messagesOut = 0;
  /** Bytes on the wire after the handshake (frame headers and control frames included). */
  bytesIn = 0;
  bytesOut = 0;
  /** Messages written compressed (RSV1) on connections that negotiated permessage-deflate. */
  compressedOut = 0;
  /** On those connections: frame bytes of the messages written before compression, and as written. */
  deflateBefore = 0;
  deflateAfter = 0;
  /** Close codes sent in our close frames (1005: one without a code). */
  readonly closeSent = new Map<number, number>();
  /** Close codes of ended connections (§7.1.5): the peer's; 1005, its frame had none; 1006, it sent no frame. */
  readonly closeReceived = new Map<number, number>();
  readonly drops = new WebSocketDrops();
}

/** For connections nobody observes (clients, tests): counted, never read. */
export const UNOBSERVED = new WebSocketStats();

export function countCode(codes: Map<number, number>, code: number): void {
  codes.set(code, (codes.get(code) ?? 0) + 1);
}
