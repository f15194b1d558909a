/**
 * Plain counters of the chat, for whoever exports metrics (no metrics library here: a field incremented
 * where it happens, read at scrape time). Counters only grow; what is true now (who is online) is
 * asked of the hub when needed (ChatGauges).
 */

/** Requests by type, as readPump hands them to the hub. */
export class RequestCounts {
  chat = 0;
  private = 0;
  join = 0;
  leave = 0;
  history = 0;
}

/** Why the chat ended a client, one counter each. */
export class ChatDrops {
  /** Its send queue was full: it does not read what it is told (the lesson's rule). */
  sendQueueFull = 0;
  /** It went on sending past its burst while refused. */
  rateLimit = 0;
  /** It sent a binary message (1003). */
  unsupportedData = 0;
  /** It sent no name within JOIN_TIMEOUT_MS. */
  joinTimeout = 0;
  /** Its hello was refused (invalid or taken name, chat unavailable). */
  helloRefused = 0;
  /** The same session connected again: the older connection is closed with 4001. */
  replaced = 0;
}

/** Powers of two: SEND_QUEUE's default is 256, its maximum 1,000,000. */
export const QUEUE_DEPTH_BOUNDS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384];

/**
 * Queue depths seen by the writePumps: counts per bucket (the last one is above every bound), sum and
 * count. Cheap enough for every batch: the bucket of a depth is its bit length, no loop over bounds.
 */
export class DepthHistogram {
  readonly counts = new Array<number>(QUEUE_DEPTH_BOUNDS.length + 1).fill(0);
  count = 0;
  sum = 0;

  record(depth: number): void {
    // ceil(log2(depth)) is the index of the first bound >= depth, for depth >= 1 up to 1024.
    let i = depth <= 1 ? 0 : 32 - Math.clz32(depth - 1);
    if (i > 10) i = depth <= 4096 ? 11 : depth <= 16384 ? 12 : 13;
    this.counts[i]!++;
    this.count++;
    this.sum += depth;
  }
}

export class ChatStats {
  /** Hellos handed to the hub (which still refuses a taken name). */
  hellos = 0;
  readonly requests = new RequestCounts();
  /** Frames put in a client's send queue (a backlog counts once per message in it). */
  deliveries = 0;
  readonly drops = new ChatDrops();
  /** Per stream a v2 hello named a position for: all it missed was sent, or not (gone: history instead). */
  resumeRecovered = 0;
  resumeNotRecovered = 0;
  /** Streams subscribed without a position (a new session, a join). */
  resumeNone = 0;
  /** Entries a writePump took from its send queue at once: how full the queues get. */
  readonly sendQueueDepth = new DepthHistogram();
}

/** What is true now, as the hub knows it. */
export interface ChatGauges {
  /** Names held (sessions), connected or in their grace period. */
  readonly sessions: number;
  /** Connections holding a session. */
  readonly clients: number;
  /** Rooms this hub knows (with members, or keeping their history for the next). */
  readonly rooms: number;
  /** Messages held in the history of those rooms and of the sessions' private inboxes. */
  readonly historyMessages: number;
}
