/**
 * The chat's connection handler (the lesson's handlers/websocket.go): HandleWebSocket, readPump and
 * writePump, one async loop each, running concurrently like the Go goroutines.
 *
 *   handleWebSocket  the first message says who the client is (the exercise's name, or a v2 hello),
 *                    then it registers with the Hub
 *   readPump         reads the client's messages and hands them to the Hub; unregisters when done
 *   writePump        drains the client's send channel to the socket, a whole batch per wake-up
 */
import { ChannelClosedError, endOfTurn } from '../../channel';
import type { EventLog } from '../../log';
import { CloseCode, PreparedFrame, type WebSocketConnection } from '../../websocket';
import { Client, type Outbound } from '../models/client';
import type { HubChannels } from '../models/hub';
import { encodeError } from '../models/message';
import { nameProblem } from '../models/names';
import { isRefusal, lessonRequest, MAX_CID_LENGTH, parseHello, parseRequest, type Hello } from '../models/protocol';
import { TokenBucket } from '../models/rate-limit';
import { ChatStats } from '../models/stats';

export interface ChatOptions {
  /** Capacity of each client's send channel. */
  readonly sendQueue: number;
  /** Token bucket: messages per second and burst. */
  readonly rateLimitPerSec: number;
  readonly rateLimitBurst: number;
  /** A connection that has not sent its name by then is closed (it would hold a slot forever). */
  readonly joinTimeoutMs: number;
  /** This connection's log (the HTTP layer adds where it comes from). */
  readonly log?: EventLog;
  /** The chat's counters (see ../models/stats.ts), the hub's too; absent: counted where nobody looks. */
  readonly stats?: ChatStats;
}

/** For handlers nobody observes (tests): counted, never read. */
const UNOBSERVED = new ChatStats();

/** Go: HandleWebSocket after the upgrade. Resolves when the client is gone. */
export async function handleWebSocket(
  conn: WebSocketConnection,
  hub: HubChannels,
  options: ChatOptions,
): Promise<void> {
  const log = options.log ?? (() => {});
  const stats = options.stats ?? UNOBSERVED;
  const client = new Client(conn, options.sendQueue);
  client.log = log;
  const writing = writePump(client, stats); // go writePump(client)
  const hello = await readHello(client, options.joinTimeoutMs, stats);
  if (hello !== null) {
    client.name = hello.name;
    client.hello = hello;
    try {
      await hub.register.send(client);
      stats.hellos++;
      await readPump(client, hub, options, stats);
    } catch (error) {
      if (!(error instanceof ChannelClosedError)) throw error;
      client.finish(CloseCode.GoingAway, 'server shutting down'); // the Hub has stopped
    }
  }

  await writing;
  const info = await conn.closed;
  log('disconnect', { name: client.name, code: info.code, reason: info.reason, sent: info.sentCode });
}

/**
 * Step 1 (the exercise): the first text message is the user name, or a v2 hello. Null when there is none
 * or it is refused (the client is finished then). A function of its own, so that the handler, which waits
 * as long as the client stays, does not keep the first message or its timer.
 */
async function readHello(client: Client, joinTimeoutMs: number, stats: ChatStats): Promise<Hello | null> {
  const { conn, log } = client;
  const deadline = setTimeout(() => {
    stats.drops.joinTimeout++;
    conn.close(CloseCode.PolicyViolation, 'no name sent in time');
  }, joinTimeoutMs);
  const first = await conn.read();
  clearTimeout(deadline);
  if (first === null) {
    client.finish(CloseCode.Normal, '');
    return null;
  }
  if (first.binary) {
    log('refused', { reason: 'binary name' });
    stats.drops.unsupportedData++;
    client.finish(CloseCode.UnsupportedData, 'binary messages are not supported');
    return null;
  }
  const hello = parseHello(first.data);
  const problem = isRefusal(hello) ? hello.problem : nameProblem(hello.name);
  if (!isRefusal(hello) && problem === undefined) return hello;
  log('refused', { name: isRefusal(hello) ? '' : hello.name, reason: problem });
  stats.drops.helloRefused++;
  refuse(client, problem ?? '');
  return null;
}

/** A refused hello: an error saying why, then close 1008. */
function refuse(client: Client, why: string): void {
  client.post(PreparedFrame.text(encodeError(why)));
  client.finish(CloseCode.PolicyViolation, why);
}

/**
 * readPump's own answers (rate limit, a request it cannot read) go straight to the client's queue. A
 * full queue ends the client like any other fan-out would: it is not reading what it is told.
 */
function reply(client: Client, stats: ChatStats, why: string, cid?: string): boolean {
  if (client.post(PreparedFrame.text(encodeError(why, cid)))) {
    stats.deliveries++;
    return true;
  }
  stats.drops.sendQueueFull++;
  client.endWith(CloseCode.PolicyViolation, 'too slow: send queue full');
  return false;
}

/**
 * Go: readPump. Reads until the connection ends, then unregisters (the Go `defer`).
 * A flood is refused message by message; a client that keeps flooding past its burst is closed.
 */
export async function readPump(
  client: Client,
  hub: HubChannels,
  options: ChatOptions,
  stats: ChatStats = UNOBSERVED,
): Promise<void> {
  // Made on the first message: until then it would only have stayed full.
  let bucket: TokenBucket | undefined;
  const v2 = client.hello!.v2;
  let refusedInARow = 0;
  try {
    for (let m = await client.conn.read(); m !== null; m = await client.conn.read()) {
      // The Hub has let go of this client (name taken, replaced, or dropped as too slow): messages still
      // in the connection's inbox must not go out under its name, after its leave notice or as an impostor.
      if (client.send.closed) break;
      // To end the client, readPump records why and leaves: `send` is the Hub's to close (Go: close(client.Send)
      // in Run); the writePump then sends what is queued (the error saying why) before the close frame.
      if (m.binary) {
        // The chat speaks JSON text; §7.4.1: 1003 is for data an endpoint cannot accept.
        stats.drops.unsupportedData++;
        client.endWith(CloseCode.UnsupportedData, 'binary messages are not supported');
        break;
      }
      const now = Date.now();
      if (!(bucket ??= new TokenBucket(options.rateLimitPerSec, options.rateLimitBurst, now)).take(now)) {
        if (++refusedInARow > options.rateLimitBurst) {
          stats.drops.rateLimit++;
          client.endWith(CloseCode.PolicyViolation, 'rate limit exceeded');
          break;
        }
        // The refused request's cid, when it has one: the client knows which to send again.
        if (!reply(client, stats, 'rate limit exceeded: slow down', v2 ? cidOf(m.data) : undefined)) break;
        continue;
      }
      refusedInARow = 0;
      if (!v2 && m.data.length === 0) {
        if (!reply(client, stats, 'empty messages are not sent')) break;
        continue;
      }
      const request = v2 ? parseRequest(m.data) : lessonRequest(m.data);
      if (isRefusal(request)) {
        if (!reply(client, stats, request.problem, request.cid)) break;
        continue;
      }
      stats.requests[request.type]++;
      // Unbuffered: this resolves once the Hub has taken the request (see Hub.broadcast).
      await hub.broadcast.send({ from: client, request });
    }
  } finally {
    // A connection that just went away (no close frame either way) may come back and resume.
    client.vanished = client.conn.vanished && client.closeCode === undefined;
    await hub.unregister.send(client); // the Hub finishes the client and tells the others
  }
}

/** The cid of a v2 request that will not be read (refused before it was parsed), if it has one. */
function cidOf(text: string): string | undefined {
  try {
    const cid = (JSON.parse(text) as { cid?: unknown }).cid;
    return typeof cid === 'string' && cid.length > 0 && cid.length <= MAX_CID_LENGTH ? cid : undefined;
  } catch {
    return undefined;
  }
}

/** Larger batches are written in slices, waiting for the socket between them: never a burst of megabytes. */
const WRITE_SLICE_BYTES = 64 * 1024;

/**
 * Go: writePump. Wakes on the first queued frame, lets the rest of the event-loop turn add to it, then
 * writes everything as one batch; waits for the socket to drain when it pushes back. Ends when the Hub
 * closes `send`, then closes the connection with the reason the server ended the client for (1000 if none).
 */
export async function writePump(client: Client, stats: ChatStats = UNOBSERVED): Promise<void> {
  const { conn, send } = client;
  for (let queued = await send.receiveMany(); queued.length > 0; queued = await send.receiveMany()) {
    // Let the rest of this event-loop turn's messages queue up behind the first: one write for all.
    await endOfTurn();
    const more = send.tryReceiveMany();
    // The queue's depth once per batch (not per message): what the writePump found waiting.
    stats.sendQueueDepth.record(queued.length + more.length);
    const frames = flatten(queued, more);
    if (conn.readyState !== 'open') continue; // keep draining until the Hub lets go of us
    await write(conn, frames);
  }
  conn.close(client.closeCode ?? CloseCode.Normal, client.closeReason);
}

const isFrame = (out: Outbound): boolean => out instanceof PreparedFrame;

/** The frames of a batch in order, a backlog's frames in its place (`first` itself when it is all frames). */
function flatten(first: readonly Outbound[], more: readonly Outbound[]): readonly PreparedFrame[] {
  if (more.length === 0 && first.every(isFrame)) return first as readonly PreparedFrame[];
  const frames: PreparedFrame[] = [];
  for (const list of [first, more]) {
    for (const out of list) {
      if (out instanceof PreparedFrame) frames.push(out);
      else for (const frame of out) frames.push(frame);
    }
  }
  return frames;
}

async function write(conn: WebSocketConnection, frames: readonly PreparedFrame[]): Promise<void> {
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < frames.length; i++) {
    bytes += frames[i]!.bytes.length;
    if (bytes < WRITE_SLICE_BYTES && i < frames.length - 1) continue;
    const slice = start === 0 && i === frames.length - 1 ? frames : frames.slice(start, i + 1);
    start = i + 1;
    bytes = 0;
    if (!conn.sendFrames(slice)) await conn.drained();
    if (conn.readyState !== 'open') return;
  }
}
