/**
 * Where the terminal client writes. Messages arrive while the user is typing, so in interactive mode
 * a plain write would land in the middle of the half-typed line. Instead: erase the prompt line,
 * print the message, draw the prompt and the user's text again below it.
 *
 *   before               after a message arrives
 *   alice> hel_          12:00:02 bob: hi
 *                        alice> hel_
 *
 * Without a prompt (piped mode, or after the prompt is gone) lines are written as they are.
 */
import { clearScreenDown, cursorTo, moveCursor, type Interface } from 'node:readline';

export class Screen {
  /** The interactive readline whose prompt stays at the bottom; null when there is no prompt. */
  private prompt: Interface | null = null;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly err: NodeJS.WritableStream,
  ) {}

  /** Keeps this readline's prompt below everything printed from now on. */
  attach(rl: Interface): void {
    this.prompt = rl;
  }

  /** Removes the prompt for good (we are leaving): later lines are printed as they are. */
  detach(): void {
    if (this.prompt === null) return;
    this.erasePrompt(this.prompt);
    this.prompt = null;
  }

  /** A line for stdout (messages, command output). */
  print(line: string): void {
    this.above(() => this.out.write(line + '\n'));
  }

  /** A line for stderr (why we stop). */
  error(line: string): void {
    this.above(() => this.err.write(line + '\n'));
  }

  private above(write: () => void): void {
    const rl = this.prompt;
    if (rl === null) {
      write();
      return;
    }
    const rows = this.erasePrompt(rl);
    write();
    // readline's redraw begins by moving up as many rows as its cursor was below the start of the
    // prompt (a long line wraps). We already moved up: give it that many fresh rows to move up into.
    this.out.write('\n'.repeat(rows));
    rl.prompt(true); // true: keep the cursor where the user left it in their line
  }

  /**
   * Moves to where the prompt starts (it may wrap over several rows) and clears to the end of the
   * screen. Returns how many rows up that was.
   */
  private erasePrompt(rl: Interface): number {
    const { rows } = rl.getCursorPos();
    moveCursor(this.out, 0, -rows);
    cursorTo(this.out, 0);
    clearScreenDown(this.out);
    return rows;
  }
}
