/**
 * Plain counters of the HTTP front door, for whoever exports metrics: incremented where it happens
 * (src/http/app.ts), read at scrape time.
 */
export class HttpStats {
  /** TCP (or TLS) connections accepted by the chat's server. */
  accepted = 0;
  /** Requests asking for a WebSocket upgrade, whatever became of them. */
  upgrades = 0;
  /** Answers refusing an upgrade, or a malformed request, by HTTP status. */
  readonly refused = new Map<number, number>();

  refuse(status: number): void {
    this.refused.set(status, (this.refused.get(status) ?? 0) + 1);
  }
}
