/**
 * Server side of the opening handshake (RFC 6455 §4.2) on a `node:http` 'upgrade' event:
 * validate, apply the Origin policy, answer 101, and hand the socket to a WebSocketConnection.
 * Routing (which path is a WebSocket endpoint) belongs to the HTTP layer, not here.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketConnection, type ConnectionOptions } from './connection';
import { checkUpgradeRequest, extensionOffers, handshakeResponse, rejectUpgrade } from './handshake';
import { acceptOffer, settingsFor } from './permessage-deflate';

export interface UpgradeOptions extends Omit<ConnectionOptions, 'role' | 'deflate'> {
  /** §10.2: browsers send Origin; the server decides whom to serve. Return false for 403. */
  checkOrigin?: (origin: string | undefined, req: IncomingMessage) => boolean;
  /** Accept a permessage-deflate offer (RFC 7692). */
  compression?: boolean;
  /** Told the status of a refused handshake, after the answer was written. */
  onRefused?: (status: number, message: string) => void;
}

/** Completes the handshake, or answers the refusal and returns null. */
export function upgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: UpgradeOptions,
): WebSocketConnection | null {
  const refuse = (status: number, message: string, headers?: Readonly<Record<string, string>>): null => {
    rejectUpgrade(socket, status, message, headers);
    options.onRefused?.(status, message);
    return null;
  };
  const verdict = checkUpgradeRequest(req);
  if (!verdict.ok) return refuse(verdict.status, verdict.message, verdict.headers);
  // §4.2.2: a server that does not accept the Origin answers 403.
  if (options.checkOrigin && !options.checkOrigin(req.headers.origin, req)) return refuse(403, 'origin not allowed');
  // RFC 7692 §5: the first acceptable permessage-deflate offer, or none.
  let accepted = null;
  if (options.compression) {
    const offers = extensionOffers(req);
    if (offers === null) return refuse(400, 'malformed Sec-WebSocket-Extensions header');
    accepted = acceptOffer(offers);
  }
  if (socket.destroyed) return null;
  socket.write(handshakeResponse(verdict.key, accepted?.header));
  const { checkOrigin: _c, compression: _d, onRefused: _r, ...connection } = options;
  const deflate = accepted ? { deflate: settingsFor('server', accepted.params) } : {};
  return new WebSocketConnection(socket as Socket, { ...connection, ...deflate, role: 'server' }, head);
}
