/**
 * permessage-deflate negotiation (RFC 7692 §5, §7) and the Sec-WebSocket-Extensions grammar (RFC 6455
 * §9.1): the server's choice among offers, exactly what it answers, and the client's check of an answer.
 */
import { describe, expect, it } from 'vitest';
import { checkHandshakeAnswer, acceptKey } from '../src/websocket/handshake';
import {
  acceptOffer,
  checkAcceptance,
  CLIENT_OFFER,
  parseExtensions,
  settingsFor,
  type DeflateParams,
} from '../src/websocket/permessage-deflate';

const BASE = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

/** The server's answer to a header: the Sec-WebSocket-Extensions value, null for "no extension". */
function answer(header: string): string | null {
  const offers = parseExtensions(header);
  if (offers === null) throw new Error(`malformed: ${header}`);
  return acceptOffer(offers)?.header ?? null;
}

describe('Sec-WebSocket-Extensions grammar (RFC 6455 §9.1)', () => {
  it('reads several offers, parameters with and without values, quoted values, in order', () => {
    expect(
      parseExtensions(
        'permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits="10", x-foo',
      ),
    ).toEqual([
      { name: 'permessage-deflate', params: [['client_max_window_bits', null]] },
      { name: 'permessage-deflate', params: [['server_max_window_bits', '10']] },
      { name: 'x-foo', params: [] },
    ]);
  });

  it('ignores case in names, whitespace around separators, and empty list elements', () => {
    expect(parseExtensions(' ,PerMessage-Deflate \t;  Client_Max_Window_Bits = 12 ,, ')).toEqual([
      { name: 'permessage-deflate', params: [['client_max_window_bits', '12']] },
    ]);
  });

  it('unescapes quoted-pairs', () => {
    expect(parseExtensions('e; a="1\\0"; b="x\\"y"')).toEqual([
      {
        name: 'e',
        params: [
          ['a', '10'],
          ['b', 'x"y'],
        ],
      },
    ]);
  });

  it.each([
    ['permessage-deflate;'],
    ['permessage-deflate;;client_max_window_bits'],
    ['permessage-deflate; a="unterminated'],
    ['permessage-deflate x'],
    ['permessage-deflate; a=b c'],
    ['permessage-deflate; a='],
    ['; client_max_window_bits'],
    ['permessage-deflate; a=(b)'],
    ['"permessage-deflate"'],
  ])('malformed: %j', (header) => {
    expect(parseExtensions(header)).toBeNull();
  });
});

describe('the server accepts the first acceptable offer (RFC 7692 §5, §7)', () => {
  it.each([
    // §7.1.1: both no_context_takeover parameters are always in our answer.
    ['permessage-deflate', BASE],
    ['permessage-deflate; client_no_context_takeover', BASE],
    ['permessage-deflate; server_no_context_takeover', BASE],
    ['permessage-deflate; server_no_context_takeover; client_no_context_takeover', BASE],
    // §7.1.2.2: with or without a value, client_max_window_bits is a hint we may leave out (15-bit inflaters).
    ['permessage-deflate; client_max_window_bits', BASE],
    ['permessage-deflate; client_max_window_bits=9', BASE],
    ['permessage-deflate; client_max_window_bits="15"', BASE],
    // §7.1.2.1: server_max_window_bits is accepted with the same value, 8 included.
    ['permessage-deflate; server_max_window_bits=10', `${BASE}; server_max_window_bits=10`],
    ['permessage-deflate; server_max_window_bits=8', `${BASE}; server_max_window_bits=8`],
    ['permessage-deflate; server_max_window_bits="15"; client_max_window_bits', `${BASE}; server_max_window_bits=15`],
    ['PERMESSAGE-DEFLATE; SERVER_MAX_WINDOW_BITS=9', `${BASE}; server_max_window_bits=9`],
    // Unknown extensions are skipped; the first acceptable permessage-deflate offer wins.
    ['x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=12', `${BASE}; server_max_window_bits=12`],
    ['permessage-deflate; server_max_window_bits=11, permessage-deflate', `${BASE}; server_max_window_bits=11`],
  ])('%j -> %j', (offer, expected) => {
    expect(answer(offer)).toBe(expected);
  });

  it.each([
    ['permessage-deflate; foo'], // §7: a parameter not defined for an offer
    ['permessage-deflate; foo=1'],
    ['permessage-deflate; server_no_context_takeover=true'], // no value allowed
    ['permessage-deflate; client_no_context_takeover=""'],
    ['permessage-deflate; server_max_window_bits'], // §7.1.2.1: a value is required
    ['permessage-deflate; server_max_window_bits=7'],
    ['permessage-deflate; server_max_window_bits=16'],
    ['permessage-deflate; server_max_window_bits=010'], // no leading zeros
    ['permessage-deflate; server_max_window_bits="1 0"'], // quoted, but not a token
    ['permessage-deflate; client_max_window_bits=0'],
    ['permessage-deflate; client_max_window_bits=abc'],
    ['permessage-deflate; client_max_window_bits; client_max_window_bits'], // §7: repeated
    ['permessage-deflate; server_no_context_takeover; server_no_context_takeover'],
    ['x-webkit-deflate-frame'],
    [''],
  ])('declines %j (answers without the extension)', (offer) => {
    expect(answer(offer)).toBeNull();
  });

  it('declining one offer moves on to the next', () => {
    const offers = [
      'permessage-deflate; server_max_window_bits=20',
      'permessage-deflate; foo',
      'permessage-deflate; server_max_window_bits=9',
    ];
    expect(answer(offers.join(', '))).toBe(`${BASE}; server_max_window_bits=9`);
  });

  it('what each side does with the agreement', () => {
    const accepted = acceptOffer(parseExtensions('permessage-deflate; server_max_window_bits=8')!)!.params;
    expect(settingsFor('server', accepted)).toEqual({ windowBits: 8, inflateTakeover: false });
    expect(settingsFor('client', accepted)).toEqual({ windowBits: 15, inflateTakeover: false });
    const plain: DeflateParams = {
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
      serverMaxWindowBits: undefined,
      clientMaxWindowBits: 10,
    };
    expect(settingsFor('client', plain)).toEqual({ windowBits: 10, inflateTakeover: true });
    expect(settingsFor('server', plain)).toEqual({ windowBits: 15, inflateTakeover: true });
  });
});

describe('the client checks the answer (RFC 7692 §7: otherwise it fails the connection)', () => {
  it.each([
    [
      'permessage-deflate',
      {
        serverNoContextTakeover: false,
        clientNoContextTakeover: false,
        serverMaxWindowBits: undefined,
        clientMaxWindowBits: undefined,
      },
    ],
    [
      BASE,
      {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: undefined,
        clientMaxWindowBits: undefined,
      },
    ],
    // §7.1.1.1 and §7.1.2.1: a server may add these unasked; §7.1.2.2: client_max_window_bits since we offered it.
    [
      'permessage-deflate; server_max_window_bits=9; client_max_window_bits=8',
      {
        serverNoContextTakeover: false,
        clientNoContextTakeover: false,
        serverMaxWindowBits: 9,
        clientMaxWindowBits: 8,
      },
    ],
  ])('accepts %j', (header, params) => {
    expect(checkAcceptance(header, CLIENT_OFFER)).toEqual(params);
  });

  it.each([
    [
      'permessage-deflate; client_max_window_bits',
      'bad permessage-deflate response: client_max_window_bits needs a value from 8 to 15',
    ],
    [
      'permessage-deflate; server_max_window_bits=16',
      'bad permessage-deflate response: server_max_window_bits needs a value from 8 to 15',
    ],
    ['permessage-deflate; foo', 'bad permessage-deflate response: unknown parameter foo'],
    [
      'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
      'bad permessage-deflate response: server_no_context_takeover given twice',
    ],
    [
      'permessage-deflate, permessage-deflate',
      'server selected extensions we did not offer: permessage-deflate, permessage-deflate',
    ],
    ['x-foo', 'server selected extensions we did not offer: x-foo'],
    ['permessage-deflate;', 'malformed Sec-WebSocket-Extensions in the response'],
  ])('refuses %j', (header, problem) => {
    expect(checkAcceptance(header, CLIENT_OFFER)).toBe(problem);
  });

  it('holds the server to what was offered', () => {
    const none: DeflateParams = {
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
      serverMaxWindowBits: undefined,
      clientMaxWindowBits: undefined,
    };
    expect(checkAcceptance('permessage-deflate; client_max_window_bits=10', none)).toBe(
      'client_max_window_bits in the response but not in the offer',
    );
    expect(checkAcceptance('permessage-deflate', { ...none, serverNoContextTakeover: true })).toBe(
      'server did not accept server_no_context_takeover',
    );
    expect(checkAcceptance('permessage-deflate; server_max_window_bits=12', { ...none, serverMaxWindowBits: 10 })).toBe(
      'server_max_window_bits larger than offered',
    );
    expect(checkAcceptance('permessage-deflate', { ...none, serverMaxWindowBits: 10 })).toBe(
      'server_max_window_bits larger than offered',
    );
    expect(checkAcceptance('permessage-deflate; client_max_window_bits=12', { ...none, clientMaxWindowBits: 10 })).toBe(
      'client_max_window_bits larger than offered',
    );
  });

  it('checkHandshakeAnswer: an extension is refused unless offered, and two header lines are one list', () => {
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const head = (ext: string[]): string =>
      [
        'HTTP/1.1 101 Switching Protocols',
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Accept: ${acceptKey(key)}`,
        ...ext.map((e) => `Sec-WebSocket-Extensions: ${e}`),
      ].join('\r\n');
    expect(checkHandshakeAnswer(head(['permessage-deflate']), key).problem).toBe(
      'server selected an extension we did not offer',
    );
    expect(checkHandshakeAnswer(head([BASE]), key, CLIENT_OFFER)).toMatchObject({
      problem: undefined,
      deflate: { serverNoContextTakeover: true },
    });
    expect(checkHandshakeAnswer(head(['permessage-deflate', 'permessage-deflate']), key, CLIENT_OFFER).problem).toBe(
      'server selected extensions we did not offer: permessage-deflate, permessage-deflate',
    );
    const plain = checkHandshakeAnswer(head([]), key, CLIENT_OFFER);
    expect([plain.problem, plain.deflate]).toEqual([undefined, undefined]);
  });
});
