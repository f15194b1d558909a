/** The RFC 6455 layer: knows WebSocket, nothing of chat. */
export { CloseCode, isValidCloseCode } from './close-codes';
export { connect, HandshakeError, type ConnectOptions } from './client';
export {
  WebSocketConnection,
  type CloseInfo,
  type ConnectionOptions,
  type Message,
  type ReadyState,
  type Role,
} from './connection';
export { FrameParser, type FrameHandler, type FrameParserOptions } from './frame-parser';
export { encodeFrame, PreparedFrame, closePayload } from './frame-writer';
export { checkZlibHandle } from './zlib-sync';
export { acceptKey, checkUpgradeRequest, rejectUpgrade, type UpgradeVerdict } from './handshake';
export { Opcode } from './opcodes';
export { upgrade, type UpgradeOptions } from './server';
export { WebSocketDrops, WebSocketStats } from './stats';
