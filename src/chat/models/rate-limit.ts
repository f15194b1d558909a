/**
 * Token bucket: `ratePerSec` tokens a second, at most `burst` saved up. One token per chat message.
 * Time is passed in, so the rule is plain arithmetic and tests need no clock.
 */
export class TokenBucket {
  /**
   * Thousandths of a token: with whole milliseconds, elapsed × rate is a whole number, so refills
   * add up exactly (0.1 + 0.1 + ... in floating point falls just short of 1 and refuses a sender
   * that kept exactly to the rate).
   */
  private milliTokens: number;
  private last: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now: number,
  ) {
    this.milliTokens = burst * 1000;
    this.last = now;
  }

  /** Takes a token if there is one. */
  take(now: number): boolean {
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.milliTokens = Math.min(this.burst * 1000, this.milliTokens + elapsed * this.ratePerSec);
      this.last = now;
    }
    if (this.milliTokens < 1000) return false;
    this.milliTokens -= 1000;
    return true;
  }
}
