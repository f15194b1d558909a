/**
 * The soak's delivery accounting: which broadcast and private messages every well-behaved client had
 * to receive, and which it did.
 *
 * The rule: a broadcast that sender S sent at time t must reach receiver R when R had its own join
 * notice before t (so the Hub registered R before it saw the message) and R was still connected
 * `leaveGraceMs` after t (a client that leaves cannot expect what was in flight). Every client runs
 * in the soak process, so one clock orders them all. The Hub keeps each sender's messages in order
 * for every receiver, so what R gets from S is a gap-free run of S's sequence numbers: a gap is a lost
 * message, a step back is a reordering or a duplicate.
 *
 * Private messages go only to clients that never leave ("stayers"), so every one of them must arrive.
 *
 * Memory stays flat over hours: a pair (R, S) is settled and forgotten when R leaves or S's session
 * has ended; only live sessions are kept.
 */

/** The run of a sender's sequence numbers a receiver has had: up to `last`. */
export interface Track {
  last: number;
}

export interface SenderLog {
  readonly name: string;
  /** Send time of each broadcast, by sequence number (increasing). */
  readonly sendTimes: number[];
  /** Private messages sent, by addressee. */
  readonly privateSent: Map<string, number>;
}

export interface ReceiverLog {
  readonly name: string;
  /** When its own join notice arrived; undefined until then. */
  joinedAt: number | undefined;
  /** Broadcast runs received, by sender. */
  readonly tracks: Map<string, Track>;
  /** Last private sequence number received, by sender. */
  readonly privateLast: Map<string, number>;
}

export interface LedgerTotals {
  delivered: number;
  privateDelivered: number;
  lost: number;
  privateLost: number;
  /** Steps back in a sender's sequence (reordered or duplicated). */
  disorder: number;
}

/** First index with times[i] > t (times increasing). */
function firstAfter(times: readonly number[], t: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (times[mid]! > t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class Ledger {
  readonly senders = new Map<string, SenderLog>();
  readonly receivers = new Map<string, ReceiverLog>();
  readonly totals: LedgerTotals = { delivered: 0, privateDelivered: 0, lost: 0, privateLost: 0, disorder: 0 };
  /** The first few problems, spelled out. */
  readonly examples: string[] = [];

  constructor(private readonly leaveGraceMs: number) {}

  private problem(text: string): void {
    if (this.examples.length < 20) this.examples.push(text);
  }

  open(name: string): { sender: SenderLog; receiver: ReceiverLog } {
    const sender: SenderLog = { name, sendTimes: [], privateSent: new Map() };
    const receiver: ReceiverLog = { name, joinedAt: undefined, tracks: new Map(), privateLast: new Map() };
    this.senders.set(name, sender);
    this.receivers.set(name, receiver);
    return { sender, receiver };
  }

  /** R received broadcast #seq from S. */
  onBroadcast(r: ReceiverLog, from: string, seq: number): void {
    const s = this.senders.get(from);
    if (s === undefined || r.joinedAt === undefined) return; // a misbehaving peer, or a settled pair
    this.totals.delivered++;
    const t = r.tracks.get(from);
    if (t === undefined) {
      // The first one from S: everything S sent after R joined must have come before it.
      const required = firstAfter(s.sendTimes, r.joinedAt);
      if (seq > required) this.lose(r.name, from, required, seq - 1);
      r.tracks.set(from, { last: seq });
    } else if (seq === t.last + 1) {
      t.last = seq;
    } else if (seq > t.last + 1) {
      this.lose(r.name, from, t.last + 1, seq - 1);
      t.last = seq;
    } else {
      this.totals.disorder++;
      this.problem(`${r.name} got #${seq} from ${from} after #${t.last}`);
    }
  }

  /** R received private #seq from S. */
  onPrivate(r: ReceiverLog, from: string, seq: number): void {
    if (!this.senders.has(from)) return;
    this.totals.privateDelivered++;
    const last = r.privateLast.get(from) ?? -1;
    if (seq === last + 1) {
      r.privateLast.set(from, seq);
    } else if (seq > last + 1) {
      this.totals.privateLost += seq - last - 1;
      this.problem(`${r.name} missed private #${last + 1}..#${seq - 1} from ${from}`);
      r.privateLast.set(from, seq);
    } else {
      this.totals.disorder++;
      this.problem(`${r.name} got private #${seq} from ${from} after #${last}`);
    }
  }

  private lose(receiver: string, from: string, a: number, b: number): void {
    this.totals.lost += b - a + 1;
    this.problem(`${receiver} missed #${a}..#${b} from ${from}`);
  }

  /**
   * Settles the pair (R, S): S's broadcasts R had to get are those sent after R joined and more than
   * leaveGraceMs before `until` (when R left; Infinity while it stays).
   */
  private settle(r: ReceiverLog, s: SenderLog, until: number): void {
    const t = r.tracks.get(s.name);
    r.tracks.delete(s.name);
    if (r.joinedAt === undefined) return;
    const a = firstAfter(s.sendTimes, r.joinedAt);
    const b = until === Infinity ? s.sendTimes.length - 1 : firstAfter(s.sendTimes, until - this.leaveGraceMs) - 1;
    if (b < a) return;
    if (t === undefined) this.lose(r.name, s.name, a, b);
    else if (t.last < b) this.lose(r.name, s.name, t.last + 1, b);
  }

  /** Private messages S sent to R must all have arrived. */
  private settlePrivate(r: ReceiverLog, s: SenderLog): void {
    const sent = s.privateSent.get(r.name) ?? 0;
    const last = r.privateLast.get(s.name) ?? -1;
    r.privateLast.delete(s.name);
    if (last < sent - 1) {
      this.totals.privateLost += sent - 1 - last;
      this.problem(`${r.name} missed private #${last + 1}..#${sent - 1} from ${s.name}`);
    }
  }

  /** R has left (by itself at `leftAt`, or was dropped): settle everything it was owed, forget it. */
  receiverGone(r: ReceiverLog, leftAt: number): void {
    if (this.receivers.get(r.name) !== r) return; // already settled
    for (const s of this.senders.values()) this.settle(r, s, leftAt);
    this.receivers.delete(r.name);
    r.joinedAt = undefined; // whatever still trickles in during the close is not counted
  }

  /** S's session ended a while ago (its last messages have had time to arrive): settle, forget it. */
  senderGone(s: SenderLog): void {
    if (this.senders.get(s.name) !== s) return; // already settled
    for (const r of this.receivers.values()) {
      this.settle(r, s, Infinity);
      this.settlePrivate(r, s);
    }
    this.senders.delete(s.name);
  }

  /** Messages still owed to live receivers (0 once everything sent has arrived). */
  pending(): number {
    let owed = 0;
    for (const r of this.receivers.values()) {
      if (r.joinedAt === undefined) continue;
      for (const s of this.senders.values()) {
        const a = firstAfter(s.sendTimes, r.joinedAt);
        const last = r.tracks.get(s.name)?.last ?? a - 1;
        owed += Math.max(0, s.sendTimes.length - 1 - last);
        owed += Math.max(0, (s.privateSent.get(r.name) ?? 0) - 1 - (r.privateLast.get(s.name) ?? -1));
      }
    }
    return owed;
  }

  /** The end of the run: every live pair is settled as if everyone stayed; then the ledger is closed. */
  settleAll(): void {
    for (const r of this.receivers.values()) {
      for (const s of this.senders.values()) {
        this.settle(r, s, Infinity);
        this.settlePrivate(r, s);
      }
      r.joinedAt = undefined;
    }
    this.receivers.clear();
    this.senders.clear();
  }
}
