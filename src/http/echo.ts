/**
 * GET /echo: the lesson's first demo. Every message comes back with its own opcode (text stays text,
 * binary stays binary). Knows only the WebSocket layer; used by the conformance suite too.
 */
import type { WebSocketConnection } from '../websocket';

export async function handleEcho(conn: WebSocketConnection): Promise<void> {
  for await (const message of conn) {
    // Respect backpressure: a peer that sends faster than it reads waits for its own echoes.
    if (!conn.send(message.data, message.binary)) await conn.drained();
  }
  // The loop ends when the peer closed (already echoed) or broke the protocol (already failed).
  conn.close();
}
