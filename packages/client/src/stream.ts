import type { Message } from './protocol/events.js';

/**
 * One channel's ordered, de-duplicated message stream. Messages arrive from anywhere (live frames,
 * a join's `missed`, history pages, send acks), in any order and any number of times; `deliver` sees
 * each `seq` once, in order, with no gap. Out-of-order arrivals wait in a buffer until the gap
 * before them is filled.
 */
export class ChannelStream {
  /** Highest seq handed to `deliver`; undefined until the start is known (the first join's lastSeq). */
  private last: number | undefined;
  private readonly buffer = new Map<number, Message>();

  constructor(
    private readonly deliver: (message: Message) => void,
    start?: number,
  ) {
    this.last = start;
  }

  /** Highest seq delivered, or undefined before the start is known. */
  get delivered(): number | undefined {
    return this.last;
  }

  /** Messages waiting behind a gap (seq > delivered + 1). */
  get hasGap(): boolean {
    return this.last !== undefined && this.buffer.size > 0;
  }

  /** Sets where the stream starts (messages up to `lastSeq` belong to the past); no-op once set. */
  start(lastSeq: number): void {
    if (this.last !== undefined) return;
    this.last = lastSeq;
    for (const seq of this.buffer.keys()) if (seq <= lastSeq) this.buffer.delete(seq);
    this.drain();
  }

  push(message: Message): void {
    if (!Number.isSafeInteger(message.seq)) return;
    if (this.last !== undefined && message.seq <= this.last) return;
    if (!this.buffer.has(message.seq)) this.buffer.set(message.seq, message);
    this.drain();
  }

  /**
   * Gives up on the missing seqs before the oldest buffered message and delivers from there. Only
   * for the case the server says nothing exists in the gap (seqs are gapless, so it should not happen).
   */
  skipGap(): void {
    if (this.last === undefined || this.buffer.size === 0) return;
    this.last = Math.min(...this.buffer.keys()) - 1;
    this.drain();
  }

  private drain(): void {
    if (this.last === undefined) return;
    for (;;) {
      const next = this.buffer.get(this.last + 1);
      if (!next) return;
      this.buffer.delete(this.last + 1);
      this.last += 1;
      this.deliver(next);
    }
  }
}
