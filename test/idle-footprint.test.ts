/**
 * What an idle registered connection keeps on the server, bounded by design whatever came before: after a
 * burst its send queue owns no slots, its frame parser holds no buffer, its session has no private inbox
 * until someone writes to it, its socket one error listener. And a client that idled reads and writes as
 * before. (White box: these are the structures a heap snapshot of 2,000 idle clients showed per connection.)
 */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Channel } from '../src/channel';
import type { Client } from '../src/chat/models/client';
import type { Session } from '../src/chat/models/session';
import { NO_RATE_LIMIT, startApp } from './helpers/app';
import { chatFrom, joinAll } from './helpers/chat';

interface ConnectionInside {
  socket: Socket;
  parser: { header: Buffer | null; utf8: object | null; messageBuffer: Buffer | null };
}

const ringOf = (ch: Channel<unknown>): unknown[] => (ch as unknown as { ring: unknown[] }).ring;
const inboxOf = (s: Session): object | null => (s as unknown as { privateStream: object | null }).privateStream;
const clientsOf = (hub: unknown): Client[] => [...(hub as { clients: Set<Client> }).clients];

describe('an idle registered connection', () => {
  it('keeps no queue slots, parser buffers, inbox or extra listeners after a burst, and works again', async () => {
    const t = await startApp(NO_RATE_LIMIT);
    const [alice, bob] = await joinAll(t.port, 'alice', 'bob');
    // A burst larger than one turn's fan-out: bob sends it, alice only reads.
    const burst = 300;
    for (let i = 0; i < burst; i++) bob.send(`m${i}`);
    await alice.next(chatFrom('bob', `m${burst - 1}`));
    await bob.next(chatFrom('bob', `m${burst - 1}`));

    // Counting for the metrics makes nothing either.
    expect((await t.app.hub.gauges()).sessions).toBe(2);
    const clients = clientsOf(t.app.hub);
    expect(clients.map((c) => c.name).sort()).toEqual(['alice', 'bob']);
    for (const client of clients) {
      const conn = client.conn as unknown as ConnectionInside;
      expect(client.send.length).toBe(0);
      expect(ringOf(client.send as Channel<unknown>)).toHaveLength(0);
      expect(inboxOf(client.session!)).toBeNull();
      expect(conn.socket.listenerCount('error')).toBe(1);
    }
    // The reader's parser has held whole frames only: nothing of its own (bob's may have gathered a split one).
    const aliceOnServer = clients.find((c) => c.name === 'alice')!;
    const parser = (aliceOnServer.conn as unknown as ConnectionInside).parser;
    expect(parser.header).toBeNull();
    expect(parser.utf8).toBeNull();
    expect(parser.messageBuffer).toBeNull();

    // Active again: a private message makes the inbox, and both directions still flow.
    alice.send('@bob are you there?');
    const got = await bob.next((m) => m.type === 'private');
    expect(got.message).toBe('are you there?');
    const bobOnServer = clients.find((c) => c.name === 'bob')!;
    expect(inboxOf(bobOnServer.session!)).not.toBeNull();
    bob.send('yes');
    await alice.next(chatFrom('bob', 'yes'));
  });
});
