// Go's channels and select for TypeScript. Knows nothing of sockets or chat.
export { Channel, ChannelClosedError } from './channel';
export type { RecvResult, TryReceiveResult } from './channel';
export { select, trySelect } from './select';
export type { ElementOf, SelectCases, SelectResult } from './select';
export { endOfTurn } from './turn';
export { newTimer, type Timer } from './time';
