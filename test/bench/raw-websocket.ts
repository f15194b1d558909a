/**
 * A WebSocket client connection as a bare TCP socket: the product's opening handshake (RFC 6455
 * §4.1: clientRequest, checkHandshakeAnswer), then the socket is the caller's. The load client
 * parses what arrives with its own FrameParser, for speed; the soak's misbehaving peers write half
 * frames into it or stop reading. With `compression` it offers permessage-deflate (RFC 7692) as
 * browsers do, and says what the server agreed to: the caller's parser must then inflate.
 *
 * Reads use net's `onread` option: every read of every such socket in this thread lands in one
 * buffer, no Buffer is allocated per read and the data skips the stream machinery (a fifth of the
 * load client's CPU per delivery). So `onData` must use or copy a chunk before it returns.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { checkHandshakeAnswer, clientRequest, newClientKey } from '../../src/websocket/handshake';
import { CLIENT_OFFER, settingsFor, type DeflateSettings } from '../../src/websocket/permessage-deflate';

const readBuffer = Buffer.allocUnsafe(64 * 1024);

/** A response head larger than this is not a handshake answer. */
const MAX_HEAD_BYTES = 16 * 1024;

export interface RawOptions {
  readonly port: number;
  /** Default /ws. */
  readonly path?: string;
  /** Give up when the server has been silent this long during the handshake (default 10 s). */
  readonly timeoutMs?: number;
  /** What arrives after the handshake; the chunk is only valid during the call. */
  readonly onData: (chunk: Buffer) => void;
  /** Offer permessage-deflate (RFC 7692 §7), as browsers do. */
  readonly compression?: boolean;
}

export interface RawWebSocket {
  readonly socket: Socket;
  /** What came after the 101 head in the same read (a copy), for the caller to handle first. */
  readonly rest: Buffer;
  /** What the server agreed to, if it accepted our permessage-deflate offer. */
  readonly deflate: DeflateSettings | undefined;
}

export function openRawWebSocket(options: RawOptions): Promise<RawWebSocket> {
  const key = newClientKey();
  const offer = options.compression === true ? CLIENT_OFFER : undefined;
  const url = new URL(`ws://127.0.0.1:${options.port}${options.path ?? '/ws'}`);
  const request = clientRequest(url, key, {}, offer);
  let deflate: DeflateSettings | undefined;
  return new Promise((resolve, reject) => {
    /** The response head so far; null once the handshake is over, either way. */
    let head: Buffer | null = Buffer.alloc(0);
    const socket = netConnect({
      host: '127.0.0.1',
      port: options.port,
      onread: {
        buffer: readBuffer,
        callback: (n: number, buffer: Uint8Array): boolean => {
          const chunk = (buffer as Buffer).subarray(0, n);
          if (head === null) options.onData(chunk);
          else onHead(chunk);
          return true;
        },
      },
    });
    const onClose = (): void => end(new Error('closed during the WebSocket handshake'));
    const onTimeout = (): void => end(new Error('WebSocket handshake timed out'));
    const end = (error: Error | null, rest: Buffer = Buffer.alloc(0)): void => {
      if (head === null) return;
      head = null;
      socket.setTimeout(0);
      socket.off('timeout', onTimeout).off('error', end).off('close', onClose);
      if (error === null) return resolve({ socket, rest, deflate });
      socket.destroy();
      reject(error);
    };
    const onHead = (chunk: Buffer): void => {
      head = Buffer.concat([head!, chunk]); // a copy: the chunk lives in the shared read buffer
      const at = head.indexOf('\r\n\r\n');
      if (at === -1) {
        if (head.length > MAX_HEAD_BYTES) end(new Error('handshake response head too large'));
        return;
      }
      const answer = checkHandshakeAnswer(head.subarray(0, at).toString('latin1'), key, offer);
      if (answer.deflate !== undefined) deflate = settingsFor('client', answer.deflate);
      const rest = head.subarray(at + 4);
      end(answer.problem === undefined ? null : new Error(`${answer.problem} ${rest.toString('utf8').trim()}`), rest);
    };
    socket.setNoDelay(true);
    socket.setTimeout(options.timeoutMs ?? 10_000);
    socket.on('timeout', onTimeout).on('error', end).on('close', onClose);
    socket.write(request);
  });
}
