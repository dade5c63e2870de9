import { describe, expect, it } from 'vitest';
import { AppendBatcher } from '../../src/core/append-batcher.js';
import { StoreError, type AppendResult, type MessageDraft, type MessageStore } from '../../src/ports/message-store.js';

/** A store with a fault switch and a gate that holds writes until released. */
class FakeStore implements Pick<MessageStore, 'append'> {
  readonly calls: MessageDraft[][] = [];
  failWith: Error | undefined;
  private seq = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  async append(drafts: readonly MessageDraft[]): Promise<AppendResult[]> {
    this.calls.push([...drafts]);
    // The fault is decided when the write starts, as a lost connection would be.
    const fail = this.failWith;
    if (this.gate) await this.gate;
    if (fail) throw fail;
    return drafts.map((d) => ({
      duplicate: false,
      message: { id: `id-${this.seq + 1}`, seq: ++this.seq, channelId: d.channelId, userId: d.userId, content: d.content, timestamp: new Date(0).toISOString(), clientMessageId: d.clientMessageId },
    }));
  }
}

const draft = (i: number): MessageDraft => ({ channelId: 'general', userId: 'u', content: `m${i}`, clientMessageId: `c${i}` });
const tick = () => new Promise<void>((r) => setImmediate(r));

describe('AppendBatcher', () => {
  it('stores a lone draft in a batch of one and resolves with its result', async () => {
    const store = new FakeStore();
    const b = new AppendBatcher(store);
    const r = await b.append(draft(1));
    expect(store.calls).toEqual([[draft(1)]]);
    expect(r.message).toMatchObject({ seq: 1, content: 'm1' });
  });

  it('drafts of one event-loop turn share one batch, in order, each caller getting its own result', async () => {
    const store = new FakeStore();
    const b = new AppendBatcher(store);
    const results = await Promise.all([1, 2, 3, 4].map((i) => b.append(draft(i))));
    expect(store.calls).toEqual([[draft(1), draft(2), draft(3), draft(4)]]);
    expect(results.map((r) => [r.message.content, r.message.seq])).toEqual([
      ['m1', 1],
      ['m2', 2],
      ['m3', 3],
      ['m4', 4],
    ]);
  });

  it('keeps one batch in flight: drafts arriving meanwhile form the next batch, in arrival order', async () => {
    const store = new FakeStore();
    const sizes: number[] = [];
    const b = new AppendBatcher(store, { onBatch: (size) => sizes.push(size) });
    store.hold();
    const first = b.append(draft(1));
    await tick();
    expect(store.calls).toHaveLength(1);
    const later = [2, 3, 4].map((i) => b.append(draft(i)));
    await tick();
    await tick();
    // Still one call: the second batch waits for the first.
    expect(store.calls).toHaveLength(1);
    expect(b.pending).toBe(4);
    store.release();
    const all = await Promise.all([first, ...later]);
    expect(store.calls).toEqual([[draft(1)], [draft(2), draft(3), draft(4)]]);
    expect(all.map((r) => r.message.seq)).toEqual([1, 2, 3, 4]);
    expect(sizes).toEqual([1, 3]);
    expect(b.pending).toBe(0);
  });

  it('splits at maxBatch without reordering', async () => {
    const store = new FakeStore();
    const b = new AppendBatcher(store, { maxBatch: 3 });
    const results = await Promise.all(Array.from({ length: 7 }, (_, i) => b.append(draft(i))));
    expect(store.calls.map((c) => c.length)).toEqual([3, 3, 1]);
    expect(store.calls.flat()).toEqual(Array.from({ length: 7 }, (_, i) => draft(i)));
    expect(results.map((r) => r.message.content)).toEqual(Array.from({ length: 7 }, (_, i) => `m${i}`));
  });

  it('a failed write rejects every draft of that batch with the store error; later batches go on', async () => {
    const store = new FakeStore();
    const reports: [number, boolean][] = [];
    const b = new AppendBatcher(store, { onBatch: (size, _ms, failed) => reports.push([size, failed]) });
    const down = new StoreError('unavailable', 'append failed (unavailable)');
    store.failWith = down;
    const failed = await Promise.allSettled([1, 2, 3].map((i) => b.append(draft(i))));
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of failed) expect((r as PromiseRejectedResult).reason).toBe(down);
    store.failWith = undefined;
    const ok = await b.append(draft(4));
    expect(ok.message.seq).toBe(1);
    expect(reports).toEqual([
      [3, true],
      [1, false],
    ]);
  });

  it('a failure in flight does not touch the drafts queued behind it', async () => {
    const store = new FakeStore();
    const b = new AppendBatcher(store);
    store.hold();
    store.failWith = new StoreError('unavailable', 'down');
    const first = b.append(draft(1)).then(
      () => 'stored',
      () => 'failed',
    );
    await tick();
    const second = b.append(draft(2));
    await tick();
    store.failWith = undefined;
    store.release();
    expect(await first).toBe('failed');
    expect((await second).message.content).toBe('m2');
  });

  it('a store that throws synchronously rejects the batch instead of crashing', async () => {
    const b = new AppendBatcher({
      append() {
        throw new Error('sync failure');
      },
    });
    await expect(b.append(draft(1))).rejects.toThrow('sync failure');
    expect(b.pending).toBe(0);
  });

  it('idle() resolves at once when nothing is pending, and after the last write otherwise', async () => {
    const store = new FakeStore();
    const b = new AppendBatcher(store);
    await b.idle();
    store.hold();
    let settled = 0;
    for (let i = 0; i < 5; i++) void b.append(draft(i)).then(() => settled++);
    const idle = b.idle().then(() => settled);
    await tick();
    expect(b.pending).toBe(5);
    store.release();
    // Every append had resolved before idle() did.
    expect(await idle).toBe(5);
    expect(b.pending).toBe(0);
  });
});
