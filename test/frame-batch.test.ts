/**
 * FrameBatch: a batch of prepared frames becomes one buffer, built once for consecutive connections
 * that write the same frames, and never handed out for a different list.
 */
import { describe, expect, it } from 'vitest';
import { FrameBatch } from '../src/websocket/frame-batch';
import { PreparedFrame } from '../src/websocket/frame-writer';

const a = PreparedFrame.text('a');
const bb = PreparedFrame.text('bb');
const ccc = PreparedFrame.text('ccc');

describe('FrameBatch', () => {
  it('is the frames back to back, and knows the largest', () => {
    const batch = FrameBatch.of([a, ccc, bb], 0);
    expect(batch.bytes.toString('hex')).toBe('8101' + '61' + '8103' + '636363' + '8102' + '6262');
    expect(batch.largest).toBe(5);
  });

  it('is built once for the same frames in the same order', () => {
    const first = FrameBatch.of([a, bb, ccc], 0);
    const again = FrameBatch.of([a, bb, ccc], 0);
    expect(again).toBe(first);
    expect(again.bytes).toBe(first.bytes);
  });

  it('is another buffer for another order, another list, or a compressed encoding', () => {
    const first = FrameBatch.of([a, bb], 0);
    expect(FrameBatch.of([bb, a], 0).bytes.equals(first.bytes)).toBe(false);
    expect(FrameBatch.of([a, bb, a], 0).bytes.length).toBe(first.bytes.length + a.bytes.length);
    expect(FrameBatch.of([a, bb], 15)).not.toBe(FrameBatch.of([a, bb], 0));
    // Equal frames made apart are other objects: nothing says their bytes are the same.
    expect(FrameBatch.of([PreparedFrame.text('a'), bb], 0)).not.toBe(FrameBatch.of([a, bb], 0));
  });

  it('with permessage-deflate, counts its frames uncompressed and those that went compressed', () => {
    const long = PreparedFrame.text('a compressible message, '.repeat(20)); // 480 bytes: deflated
    const batch = FrameBatch.of([a, long, bb], 15); // 'a' and 'bb' are under the threshold: plain
    expect(batch.plainBytes).toBe(a.bytes.length + long.bytes.length + bb.bytes.length);
    expect(batch.compressed).toBe(1);
    const deflated = long.deflatedBytes(15);
    expect(deflated[0]! & 0x40).toBe(0x40); // RSV1
    expect(batch.bytes.length).toBe(a.bytes.length + deflated.length + bb.bytes.length);
    expect(batch.bytes.length).toBeLessThan(batch.plainBytes);
  });

  it('does not follow the caller reusing its array', () => {
    const list = [a, bb];
    const first = FrameBatch.of(list, 0);
    list[1] = ccc;
    const second = FrameBatch.of(list, 0);
    expect(second).not.toBe(first);
    expect(second.bytes.toString('hex')).toBe('8101' + '61' + '8103' + '636363');
    expect(first.bytes.toString('hex')).toBe('8101' + '61' + '8102' + '6262');
  });
});
