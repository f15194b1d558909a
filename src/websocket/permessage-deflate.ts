/**
 * The permessage-deflate extension (RFC 7692): reading Sec-WebSocket-Extensions (RFC 6455 §9.1),
 * the server's choice among the client's offers (§5, §7), the client's offer and its check of the
 * server's answer (§7), and what each side then does (§7.1).
 *
 * Our server answers every accepted offer with server_no_context_takeover (§7.1.1.1: always allowed),
 * so it can compress a broadcast message once for every recipient, and with client_no_context_takeover
 * (§7.1.1.2: always allowed), so no connection keeps an inflater between messages.
 */

export const EXTENSION = 'permessage-deflate';

/** One extension in a Sec-WebSocket-Extensions list: its name and its parameters, in order. */
export interface ExtensionOffer {
  readonly name: string;
  /** Lower-cased names; a value is the token or the unescaped quoted string, null when absent. */
  readonly params: readonly (readonly [name: string, value: string | null])[];
}

/** The agreed parameters (§7.1), as both sides understand them once the handshake is done. */
export interface DeflateParams {
  readonly serverNoContextTakeover: boolean;
  readonly clientNoContextTakeover: boolean;
  /** §7.1.2.1: the largest window the server compresses with; undefined: 15. */
  readonly serverMaxWindowBits: number | undefined;
  /** §7.1.2.2: the largest window the client compresses with; undefined: 15 (in an offer, null: no value). */
  readonly clientMaxWindowBits: number | null | undefined;
}

/** What one endpoint does with the agreed parameters. */
export interface DeflateSettings {
  /** The largest LZ77 window our messages may use (§7.1.2). */
  readonly windowBits: number;
  /** The peer may refer to its earlier messages (§7.1.1): our inflater keeps its window between them. */
  readonly inflateTakeover: boolean;
}

const MAX_WINDOW_BITS = 15;

// RFC 7230 §3.2.6: token = 1*tchar; quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses a Sec-WebSocket-Extensions value (RFC 6455 §9.1):
 *   extension-list = 1#extension; extension = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 * with optional whitespace around every separator; empty list elements are skipped (RFC 7230 §7).
 * Returns null when the header is malformed.
 */
export function parseExtensions(header: string): ExtensionOffer[] | null {
  const offers: ExtensionOffer[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const token = (): string | null => {
    const start = i;
    while (i < n && TCHAR.test(header[i]!)) i++;
    return i > start ? header.slice(start, i) : null;
  };
  const quoted = (): string | null => {
    // At the opening DQUOTE. quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
    let value = '';
    for (i++; i < n; i++) {
      const c = header[i]!;
      if (c === '"') {
        i++;
        return value;
      }
      if (c === '\\') {
        if (++i === n) return null;
        value += header[i];
      } else if (c < ' ' && c !== '\t') {
        return null;
      } else {
        value += c;
      }
    }
    return null; // unterminated
  };

  for (;;) {
    skipSpace();
    if (i === n) break;
    if (header[i] === ',') {
      i++;
      continue;
    }
    const name = token();
    if (name === null) return null;
    const params: [string, string | null][] = [];
    skipSpace();
    while (i < n && header[i] === ';') {
      i++;
      skipSpace();
      const param = token();
      if (param === null) return null;
      skipSpace();
      let value: string | null = null;
      if (i < n && header[i] === '=') {
        i++;
        skipSpace();
        value = header[i] === '"' ? quoted() : token();
        if (value === null) return null;
        skipSpace();
      }
      params.push([param.toLowerCase(), value]);
    }
    offers.push({ name: name.toLowerCase(), params });
    if (i < n && header[i] !== ',') return null;
  }
  return offers;
}

/** §7.1.2.1/§7.1.2.2: a decimal integer from 8 to 15 without leading zeros. */
function windowBits(value: string): number | undefined {
  return /^(?:[89]|1[0-5])$/.test(value) ? Number(value) : undefined;
}

/**
 * The parameters of one permessage-deflate element, or a reason it is unacceptable: a parameter not
 * defined for `side`, a bad value, or the same parameter twice (§7, §7.1).
 */
export function readParams(offer: ExtensionOffer, side: 'offer' | 'response'): DeflateParams | string {
  const seen = new Set<string>();
  let serverNoContextTakeover = false;
  let clientNoContextTakeover = false;
  let serverMaxWindowBits: number | undefined;
  let clientMaxWindowBits: number | null | undefined;
  for (const [name, value] of offer.params) {
    if (seen.has(name)) return `${name} given twice`;
    seen.add(name);
    // §9.1: a quoted value must be a token after unescaping; none of ours may be anything else either.
    if (value !== null && !TOKEN.test(value)) return `invalid value for ${name}`;
    switch (name) {
      case 'server_no_context_takeover': // §7.1.1.1: no value
      case 'client_no_context_takeover': // §7.1.1.2: no value
        if (value !== null) return `${name} takes no value`;
        if (name === 'server_no_context_takeover') serverNoContextTakeover = true;
        else clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits': {
        // §7.1.2.1: a value from 8 to 15, in an offer and in a response.
        const bits = value === null ? undefined : windowBits(value);
        if (bits === undefined) return `server_max_window_bits needs a value from 8 to 15`;
        serverMaxWindowBits = bits;
        break;
      }
      case 'client_max_window_bits': {
        // §7.1.2.2: in an offer the value is optional; in a response it is required.
        if (value === null && side === 'offer') {
          clientMaxWindowBits = null;
          break;
        }
        const bits = value === null ? undefined : windowBits(value);
        if (bits === undefined) return `client_max_window_bits needs a value from 8 to 15`;
        clientMaxWindowBits = bits;
        break;
      }
      default:
        return `unknown parameter ${name}`;
    }
  }
  return { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits };
}

/** The server's answer to an accepted offer: the parameters it agrees to, and the header value saying so. */
export interface Acceptance {
  readonly params: DeflateParams;
  readonly header: string;
}

/**
 * The server's choice (§5): the first permessage-deflate offer it can accept, in the client's order of
 * preference. An offer with an unknown parameter, a bad value or a repeated parameter is declined
 * (§7) and the next one is considered. Null: none acceptable (answer without the extension).
 */
export function acceptOffer(offers: readonly ExtensionOffer[]): Acceptance | null {
  for (const offer of offers) {
    if (offer.name !== EXTENSION) continue;
    const asked = readParams(offer, 'offer');
    if (typeof asked === 'string') continue; // §7: decline this offer, try the next
    const params: DeflateParams = {
      // §7.1.1.1: allowed whether or not the client asked; it is what makes "compress once" possible.
      serverNoContextTakeover: true,
      // §7.1.1.2: allowed whether or not the client offered it; no inflater is kept between messages.
      clientNoContextTakeover: true,
      // §7.1.2.1: asked for a smaller window: agree, with the same value (we can compress with any).
      serverMaxWindowBits: asked.serverMaxWindowBits,
      // §7.1.2.2: omitted: every inflater here has a 15-bit window, so the client may use any size.
      clientMaxWindowBits: undefined,
    };
    return { params, header: formatParams(params) };
  }
  return null;
}

/** The Sec-WebSocket-Extensions value for a single permessage-deflate element. */
export function formatParams(params: DeflateParams): string {
  let header = EXTENSION;
  if (params.serverNoContextTakeover) header += '; server_no_context_takeover';
  if (params.clientNoContextTakeover) header += '; client_no_context_takeover';
  if (params.serverMaxWindowBits !== undefined) header += `; server_max_window_bits=${params.serverMaxWindowBits}`;
  if (params.clientMaxWindowBits === null) header += '; client_max_window_bits';
  else if (params.clientMaxWindowBits !== undefined) header += `; client_max_window_bits=${params.clientMaxWindowBits}`;
  return header;
}

/**
 * Our client's offer: permessage-deflate with client_max_window_bits and no value (§7.1.2.2: "the
 * server may limit our window"), as browsers send it. We take over no context of our own anyway.
 */
export const CLIENT_OFFER: DeflateParams = {
  serverNoContextTakeover: false,
  clientNoContextTakeover: false,
  serverMaxWindowBits: undefined,
  clientMaxWindowBits: null,
};

/**
 * The client's check of the server's Sec-WebSocket-Extensions (§7: "the client MUST _Fail the
 * WebSocket Connection_" on any of these). Returns the agreed parameters, or why the answer is bad.
 */
export function checkAcceptance(header: string, offered: DeflateParams): DeflateParams | string {
  const answer = parseExtensions(header);
  if (answer === null) return 'malformed Sec-WebSocket-Extensions in the response';
  if (answer.length !== 1 || answer[0]!.name !== EXTENSION)
    return `server selected extensions we did not offer: ${header}`;
  const params = readParams(answer[0]!, 'response');
  if (typeof params === 'string') return `bad permessage-deflate response: ${params}`;
  // §7.1.1.1: asked for server_no_context_takeover, the server must say so.
  if (offered.serverNoContextTakeover && !params.serverNoContextTakeover) {
    return 'server did not accept server_no_context_takeover';
  }
  // §7.1.2.1: never a larger window than we asked for.
  if (
    offered.serverMaxWindowBits !== undefined &&
    (params.serverMaxWindowBits ?? MAX_WINDOW_BITS) > offered.serverMaxWindowBits
  ) {
    return 'server_max_window_bits larger than offered';
  }
  // §7.1.2.2: only if we offered it, and never above a value we gave.
  if (params.clientMaxWindowBits !== undefined) {
    if (offered.clientMaxWindowBits === undefined) return 'client_max_window_bits in the response but not in the offer';
    if (typeof offered.clientMaxWindowBits === 'number' && params.clientMaxWindowBits! > offered.clientMaxWindowBits) {
      return 'client_max_window_bits larger than offered';
    }
  }
  return params;
}

/** What `role` does with the agreed parameters. */
export function settingsFor(role: 'server' | 'client', params: DeflateParams): DeflateSettings {
  return role === 'server'
    ? { windowBits: params.serverMaxWindowBits ?? MAX_WINDOW_BITS, inflateTakeover: !params.clientNoContextTakeover }
    : {
        windowBits: (params.clientMaxWindowBits as number | undefined) ?? MAX_WINDOW_BITS,
        inflateTakeover: !params.serverNoContextTakeover,
      };
}
