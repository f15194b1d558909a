/**
 * Running the frame parser in tests: a recorder of every callback (data as hex: delivered buffers may
 * be views into the chunk), a run over a stream cut anywhere, and the check that a verdict does not
 * depend on the cuts (whole, in two at every offset, one byte at a time).
 */
import { expect } from 'vitest';
import { FrameParser, type FrameHandler, type FrameParserOptions } from '../../src/websocket/frame-parser';

export type ParseEvent =
  | readonly ['text' | 'binary', string]
  | readonly ['ping' | 'pong', string]
  | readonly ['close', number, string]
  | readonly ['error', number, string];

/** Records every callback of a FrameParser as a ParseEvent. */
export class ParseRecorder implements FrameHandler {
  readonly events: ParseEvent[] = [];
  onMessage(binary: boolean, data: Buffer): void {
    this.events.push([binary ? 'binary' : 'text', data.toString('hex')]);
  }
  onPing(payload: Buffer): void {
    this.events.push(['ping', payload.toString('hex')]);
  }
  onPong(payload: Buffer): void {
    this.events.push(['pong', payload.toString('hex')]);
  }
  onClose(code: number, reason: string): void {
    this.events.push(['close', code, reason]);
  }
  onProtocolError(code: number, reason: string): void {
    this.events.push(['error', code, reason]);
  }
}

/** Feeds `stream` cut at `cuts` (ascending offsets), each chunk a fresh copy (push unmasks in place). */
export function parse(stream: Buffer, cuts: readonly number[], options: FrameParserOptions): ParseEvent[] {
  const recorder = new ParseRecorder();
  const parser = new FrameParser(options, recorder);
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    parser.push(Buffer.from(stream.subarray(from, to)));
    from = to;
  }
  parser.stop(); // releases what a compressed message in progress holds
  return recorder.events;
}

/**
 * Every way of feeding the stream gives `expected`: whole, 2 chunks at every offset, 1-byte chunks.
 * `shape` drops what a test does not compare (a close's reason, an error's wording).
 */
export function expectVerdict(
  stream: Buffer,
  expected: readonly unknown[],
  options: FrameParserOptions,
  shape: (e: ParseEvent) => unknown = (e) => e,
): void {
  const run = (cuts: readonly number[]): unknown[] => parse(stream, cuts, options).map(shape);
  expect(run([]), 'whole stream').toEqual(expected);
  for (let cut = 1; cut < stream.length; cut++) expect(run([cut]), `split at ${cut}`).toEqual(expected);
  const bytes = Array.from({ length: Math.max(0, stream.length - 1) }, (_, i) => i + 1);
  expect(run(bytes), '1-byte chunks').toEqual(expected);
}
