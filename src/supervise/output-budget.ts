/**
 * A token bucket in bytes that decides whether one more line of server output
 * may be logged. A server that floods stdout must not make the daemon's
 * logger (and the memory behind an async stdout) grow without bound, nor make
 * the child block on a full pipe: lines over budget are dropped and counted,
 * and the count is reported once the budget allows logging again.
 * The clock is passed in, so this stays pure and testable.
 */

export interface OutputBudgetOptions {
  /** Sustained bytes of output logged per second. @default 2 MiB */
  bytesPerSecond?: number;
  /** Bytes that may be logged in one burst. @default 8 MiB */
  burstBytes?: number;
  /** Cost added to every line for the record around it, in bytes. @default 128 */
  lineOverhead?: number;
}

export class OutputBudget {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  readonly lineOverhead: number;
  #tokens: number;
  #last: number;
  /** Lines dropped since the last `takeDropped()`. */
  #dropped = 0;
  /** Lines dropped in total. */
  droppedTotal = 0;

  constructor(opts: OutputBudgetOptions = {}, now = 0) {
    this.bytesPerSecond = opts.bytesPerSecond ?? 2 * 1024 * 1024;
    this.burstBytes = opts.burstBytes ?? 8 * 1024 * 1024;
    this.lineOverhead = opts.lineOverhead ?? 128;
    this.#tokens = this.burstBytes;
    this.#last = now;
  }

  /** True when a line of `bytes` may be logged at time `now` (ms); otherwise counts it as dropped. */
  take(bytes: number, now: number): boolean {
    const elapsed = Math.max(0, now - this.#last);
    this.#last = now;
    this.#tokens = Math.min(this.burstBytes, this.#tokens + (elapsed * this.bytesPerSecond) / 1000);
    const cost = bytes + this.lineOverhead;
    if (this.#tokens >= cost) {
      this.#tokens -= cost;
      return true;
    }
    this.#dropped++;
    this.droppedTotal++;
    return false;
  }

  /** Lines dropped since the last call, and resets that count. */
  takeDropped(): number {
    const n = this.#dropped;
    this.#dropped = 0;
    return n;
  }
}
