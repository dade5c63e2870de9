/** Counts the event handlers running, so that the drain can wait until none is. */
export class InFlight {
  private running = 0;
  private waiters: (() => void)[] = [];

  /** Counts `work` until it settles. */
  track(work: Promise<unknown>): void {
    this.running++;
    const done = () => {
      if (--this.running > 0) return;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    };
    work.then(done, done);
  }

  /** Resolves when no handler is running. */
  idle(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}
