/**
 * The FIFO of commands waiting for their replies, with their deadlines.
 *
 * RESP spec, "Pipelining": Redis answers the commands of one connection in the order it received them,
 * so the next reply (that is not a push) belongs to the oldest command still waiting. A command that
 * times out is settled at once for its caller but stays in the FIFO until its reply comes, which is
 * then read and dropped: removing it would hand its reply to the command behind it.
 *
 * Deadlines cost one timer for the whole queue, not one per command: commands with the default timeout
 * are queued in send order, so their deadlines are in order too, and a cursor walks them. A command
 * with its own timeout (a blocking command, say) keeps its own timer.
 *
 * Dead link: if the oldest command is still unanswered `deadLinkAfterMs` after its deadline, nothing is
 * coming back on this connection (a partition, a dead peer that never sent a FIN), and onDeadLink() is
 * called so the connection can be dropped and made again.
 */
import type { RespValue } from './values';

export interface PendingCommand {
  /** The command's name, for error messages. */
  readonly name: string;
  readonly resolve: (value: RespValue) => void;
  readonly reject: (error: Error) => void;
  /** performance.now() when it was sent, and when it times out. */
  readonly sentAt: number;
  readonly deadline: number;
  /** Pub/sub commands are answered by this many push confirmations instead of one reply. */
  pushReplies: number;
  timedOut: boolean;
  /** A timeout other than the default: its own timer (none when infinite), skipped by the cursor. */
  ownTimeout: boolean;
  ownTimer: NodeJS.Timeout | undefined;
}

export interface ReplyQueueEvents {
  onTimeout(command: PendingCommand): void;
  onDeadLink(command: PendingCommand): void;
}

/** Shrink the backing array once this many slots at its front are spent. */
const COMPACT_AT = 1024;

export class ReplyQueue {
  private items: PendingCommand[] = [];
  private head = 0;
  /** Below this index, no default-timeout command is left to time out. */
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(
    private readonly defaultTimeoutMs: number,
    private readonly deadLinkAfterMs: number,
    private readonly events: ReplyQueueEvents,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  /** The oldest command waiting, or undefined. */
  peek(): PendingCommand | undefined {
    return this.items[this.head];
  }

  /** Queues a command; `timeoutMs` other than the default gets its own timer. */
  add(command: PendingCommand, timeoutMs: number): void {
    this.items.push(command);
    command.ownTimeout = timeoutMs !== this.defaultTimeoutMs;
    if (command.ownTimeout && Number.isFinite(timeoutMs)) {
      command.ownTimer = setTimeout(() => this.expire(command), timeoutMs);
      command.ownTimer.unref();
    }
    this.arm();
  }

  /** Removes the oldest command: its reply has arrived. */
  shift(): PendingCommand | undefined {
    const command = this.items[this.head];
    if (command === undefined) return undefined;
    this.items[this.head++] = undefined as unknown as PendingCommand; // let it be collected
    if (this.cursor < this.head) this.cursor = this.head;
    if (command.ownTimer !== undefined) clearTimeout(command.ownTimer);
    if (this.head === this.items.length) {
      this.items = [];
      this.head = this.cursor = 0;
    } else if (this.head >= COMPACT_AT && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.cursor -= this.head;
      this.head = 0;
    }
    return command;
  }

  /** Empties the queue, handing every command to `each` (oldest first); stops all timers. */
  drain(each: (command: PendingCommand, index: number) => void): void {
    const items = this.items.slice(this.head);
    this.items = [];
    this.head = this.cursor = 0;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    items.forEach((command, i) => {
      if (command.ownTimer !== undefined) clearTimeout(command.ownTimer);
      each(command, i);
    });
  }

  private expire(command: PendingCommand): void {
    if (command.timedOut) return;
    command.timedOut = true;
    this.events.onTimeout(command);
  }

  /** Makes sure the timer fires by the next deadline or dead-link check. */
  private arm(): void {
    // Commands with their own timer are not the cursor's business.
    while (this.cursor < this.items.length && this.items[this.cursor]!.ownTimeout) this.cursor++;
    const next = this.items[this.cursor];
    const oldest = this.items[this.head];
    let at = next === undefined ? Infinity : next.deadline;
    if (oldest !== undefined) at = Math.min(at, oldest.deadline + this.deadLinkAfterMs);
    if (at === Infinity || at >= this.timerAt) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, at - performance.now()) + 1);
    this.timer.unref();
  }

  private sweep(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    while (this.cursor < this.items.length) {
      const command = this.items[this.cursor]!;
      if (!command.ownTimeout) {
        if (command.deadline > now) break;
        this.expire(command);
      }
      this.cursor++;
    }
    const oldest = this.items[this.head];
    if (oldest !== undefined && now >= oldest.deadline + this.deadLinkAfterMs) {
      this.events.onDeadLink(oldest);
      return;
    }
    this.arm();
  }
}
