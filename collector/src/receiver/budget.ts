/**
 * Bytes of requests that all agent streams together have read and not yet finished (a batch:
 * until it is committed and acked). A stream stops reading while the total is over the limit,
 * so collector memory is bounded by the limit plus one request per stream (and one HTTP/2
 * window per paused stream), however many agents send at once.
 */
export const DEFAULT_IN_HAND_BYTES = 64 * 1024 * 1024;

export class InHandBudget {
  private used = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limit = DEFAULT_IN_HAND_BYTES) {}

  get bytes(): number {
    return this.used;
  }

  get over(): boolean {
    return this.used >= this.limit;
  }

  take(bytes: number): void {
    this.used += bytes;
  }

  /** Returns bytes; streams waiting for room are resumed while there is room. */
  give(bytes: number): void {
    this.used -= bytes;
    for (const resume of this.waiting) {
      if (this.over) break;
      this.waiting.delete(resume);
      resume();
    }
  }

  /** Calls `resume` once there is room again (at once when there is). */
  whenRoom(resume: () => void): void {
    if (!this.over) resume();
    else this.waiting.add(resume);
  }

  /** A stream that ended no longer waits. */
  forget(resume: () => void): void {
    this.waiting.delete(resume);
  }
}
