/**
 * endOfTurn(): resolves when the event loop has run this round's I/O callbacks (setImmediate),
 * one shared promise for every caller in the same round.
 *
 * Why: in Go, a writePump that is busy writing lets its channel fill up behind it, so its next
 * drain finds many messages (gorilla's chat writes them all in one frame batch). A single-threaded
 * writePump wakes on the first message instead. Waiting for the end of the turn lets every message
 * that the same round of socket reads produces join that write: one syscall instead of dozens.
 * The wait is a few microseconds; nothing is held across turns.
 */
let pending: Promise<void> | null = null;

function settle(resolve: () => void): void {
  setImmediate(() => {
    pending = null;
    resolve();
  });
}

export function endOfTurn(): Promise<void> {
  return (pending ??= new Promise(settle));
}
