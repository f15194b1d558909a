/**
 * A stream's history: offsets 1, 2, 3... without gaps, a bounded ring of the latest messages, the
 * de-duplication index that forgets what the ring forgets, and which positions can be resumed.
 */
import { describe, expect, it } from 'vitest';
import { Stream } from '../src/chat/models/history';
import { chatMessage } from '../src/chat/models/message';

const offsets = (jsons: string[]): number[] => jsons.map((j) => (JSON.parse(j) as { offset: number }).offset);

describe('Stream', () => {
  it('gives offsets 1, 2, 3... and stores the JSON members receive, with stream, offset and epoch', () => {
    const s = new Stream('lobby', 10);
    expect(s.top).toBe(0);
    const a = s.append(chatMessage('alice', 'one'));
    const b = s.append(chatMessage('bob', 'two'));
    expect([a.offset, b.offset, s.top]).toEqual([1, 2, 2]);
    const m = JSON.parse(a.json) as Record<string, unknown>;
    expect(Object.keys(m)).toEqual(['type', 'user', 'message', 'time', 'stream', 'offset', 'epoch']);
    expect(m).toMatchObject({ type: 'chat', user: 'alice', message: 'one', stream: 'lobby', offset: 1 });
    expect(m.epoch).toBe(s.epoch);
    expect(s.epoch).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(new Stream('lobby', 10).epoch).not.toBe(s.epoch);
  });

  it('keeps the last `size` messages; older ones are gone', () => {
    const s = new Stream('r', 3);
    for (let i = 1; i <= 7; i++) s.append(chatMessage('a', `m${i}`));
    expect(s.oldest).toBe(5);
    expect(offsets(s.range(1, 100))).toEqual([5, 6, 7]);
    expect(offsets(s.range(6, 6))).toEqual([6]);
    expect(s.range(8, 10)).toEqual([]);
  });

  it('grows its ring as it fills, keeping order across the wrap', () => {
    const s = new Stream('r', 20);
    for (let i = 1; i <= 45; i++) {
      s.append(chatMessage('a', `m${i}`));
      const held = Math.min(i, 20);
      expect(offsets(s.range(1, i))).toEqual(Array.from({ length: held }, (_, k) => i - held + 1 + k));
    }
  });

  it('finds a message by its de-duplication key while it is held, and forgets it with the message', () => {
    const s = new Stream('r', 2);
    s.append(chatMessage('a', 'x'), 'alice\nc-1');
    s.append(chatMessage('a', 'y'), 'alice\nc-2');
    expect(s.find('alice\nc-1')).toBe(1);
    s.append(chatMessage('a', 'z'));
    expect(s.find('alice\nc-1')).toBeUndefined();
    expect(s.find('alice\nc-2')).toBe(2);
  });

  it('covers a position in its epoch whose successors are all still held', () => {
    const s = new Stream('r', 3);
    for (let i = 1; i <= 5; i++) s.append(chatMessage('a', `m${i}`));
    // held: 3, 4, 5
    expect(s.covers({ epoch: s.epoch, offset: 5 })).toBe(true);
    expect(s.covers({ epoch: s.epoch, offset: 2 })).toBe(true); // 3.. are held
    expect(s.covers({ epoch: s.epoch, offset: 1 })).toBe(false); // 2 is gone
    expect(s.covers({ epoch: s.epoch, offset: 6 })).toBe(false); // from the future
    expect(s.covers({ epoch: 'other', offset: 5 })).toBe(false);
    expect(new Stream('r', 3).covers({ epoch: 'x', offset: 0 })).toBe(false);
  });
});
