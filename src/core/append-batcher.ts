import type { AppendResult, MessageDraft, MessageStore } from '../ports/message-store.js';

interface Pending {
  draft: MessageDraft;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

export interface AppendBatcherOptions {
  /** Most drafts in one transaction. @default 500 */
  maxBatch?: number;
  /** Called after each batch with its size and duration (metrics). */
  onBatch?: (size: number, ms: number, failed: boolean) => void;
}

/**
 * Group commit: sends that arrive while a write is in flight are stored together in the next
 * transaction. One batch is in flight at a time, so an instance stores its sends in the order it
 * received them. Idle, a send waits only for the end of the current event-loop turn, so concurrent
 * sends of that turn share a transaction and a lone send is not delayed.
 */
export class AppendBatcher {
  private queue: Pending[] = [];
  private busy = false;
  /** Drafts in the batch being written. */
  private writing = 0;
  private scheduled = false;
  private readonly maxBatch: number;
  private readonly onBatch: AppendBatcherOptions['onBatch'];
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly store: Pick<MessageStore, 'append'>,
    options: AppendBatcherOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 500;
    this.onBatch = options.onBatch;
  }

  append(draft: MessageDraft): Promise<AppendResult> {
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({ draft, resolve, reject });
      this.schedule();
    });
  }

  /** Drafts queued or being written. */
  get pending(): number {
    return this.queue.length + this.writing;
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.busy || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.busy) return;
    if (this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    this.busy = true;
    const batch = this.queue.splice(0, this.maxBatch);
    this.writing = batch.length;
    const started = performance.now();
    let failed = false;
    try {
      const results = await this.store.append(batch.map((p) => p.draft));
      batch.forEach((p, i) => p.resolve(results[i]!));
    } catch (err) {
      failed = true;
      for (const p of batch) p.reject(err);
    } finally {
      this.busy = false;
      this.writing = 0;
      this.onBatch?.(batch.length, performance.now() - started, failed);
    }
    if (this.queue.length > 0) this.schedule();
    else void this.flush();
  }
}
