import type pg from 'pg';
import { sleep } from '../helpers/ports.js';
import type { Fleet } from './fleet.js';

export interface StoredRow {
  id: string;
  channelId: string;
  seq: number;
  userId: string;
  content: string;
  createdAt: number;
}

export interface Verdict {
  acked: number;
  lost: number;
  duplicated: number;
  divergent: number;
  /** Channels whose stored seqs are not exactly 1..n. */
  gaps: number;
  stored: number;
  maxConvergenceMs: number;
  /** When the slowest-converging message was stored (ms since the epoch). */
  slowestStoredAt: number;
  /** The member that received the slowest message last, and whether it sits behind the droppable network. */
  slowestMember: string;
  /** Time from the end of sending until every member's view equalled the store (or the deadline). */
  settleMs: number;
  lostExamples: string[];
  divergentExamples: string[];
}

export async function readStore(pool: pg.Pool, channels: readonly string[]): Promise<StoredRow[]> {
  const r = await pool.query<{ id: string; channel_id: string; seq: string; user_id: string; content: string; created_at: string }>(
    'SELECT id, channel_id, seq, user_id, content, created_at FROM messages WHERE channel_id = ANY($1) ORDER BY channel_id, seq',
    [channels],
  );
  return r.rows.map((x) => ({ id: x.id, channelId: x.channel_id, seq: Number(x.seq), userId: x.user_id, content: x.content, createdAt: Number(x.created_at) }));
}

/**
 * The checks of issue 7 item 6: every acknowledged message is in the store exactly once, seqs are
 * gapless, and after convergence every member's view of every channel equals the store.
 */
export async function verify(fleet: Fleet, pool: pg.Pool, channels: readonly string[], convergeWithinMs: number, log: (l: string) => void): Promise<Verdict> {
  const rows = await readStore(pool, channels);
  const byId = new Map(rows.map((r) => [r.id, r]));

  const lostExamples: string[] = [];
  let lost = 0;
  for (const a of fleet.acked) {
    const row = byId.get(a.message.id);
    if (!row || row.content !== a.content || row.seq !== a.message.seq || row.channelId !== a.message.channelId) {
      lost++;
      if (lostExamples.length < 5) lostExamples.push(`${a.content} acked as ${a.message.channelId}#${a.message.seq} (${a.message.id}): ${row ? `stored as ${row.channelId}#${row.seq} "${row.content}"` : 'not in the store'}`);
    }
  }

  // Every send has unique content, so a content stored twice is a message stored twice.
  const contents = new Map<string, number>();
  for (const r of rows) contents.set(`${r.channelId}\u0000${r.content}`, (contents.get(`${r.channelId}\u0000${r.content}`) ?? 0) + 1);
  let duplicated = 0;
  for (const n of contents.values()) if (n > 1) duplicated += n - 1;
  // The same send acknowledged as two different messages is a duplicate too.
  const ackedIds = new Map<string, string>();
  for (const a of fleet.acked) {
    const prev = ackedIds.get(a.content);
    if (prev !== undefined && prev !== a.message.id) duplicated++;
    ackedIds.set(a.content, a.message.id);
  }

  let gaps = 0;
  const storeViews = new Map<string, StoredRow[]>();
  for (const c of channels) storeViews.set(c, rows.filter((r) => r.channelId === c));
  for (const [c, list] of storeViews) {
    if (!list.every((r, i) => r.seq === i + 1)) {
      gaps++;
      log(`!! channel ${c}: stored seqs are not gapless`);
    }
  }

  const started = Date.now();
  const divergentMembers = () =>
    fleet.members.filter((m) =>
      channels.some((c) => {
        const view = m.views.get(c) ?? [];
        const store = storeViews.get(c)!;
        return view.length !== store.length || view.some((msg, i) => msg.id !== store[i]!.id);
      }),
    );
  let divergent = divergentMembers();
  while (divergent.length > 0 && Date.now() - started < convergeWithinMs) {
    await sleep(250);
    divergent = divergentMembers();
  }
  const settleMs = Date.now() - started;
  const divergentExamples = divergent.slice(0, 5).map((m) => {
    const parts = channels.map((c) => {
      const view = m.views.get(c) ?? [];
      const store = storeViews.get(c)!;
      const firstDiff = view.findIndex((msg, i) => msg.id !== store[i]?.id);
      return `${c}: view ${view.length} / store ${store.length}${firstDiff >= 0 ? `, first difference at index ${firstDiff}` : ''}`;
    });
    return `${m.id} (state ${m.client.state.status}): ${parts.join('; ')}`;
  });

  // Convergence of a message: from when it was stored to when the last member had it.
  let maxConvergenceMs = 0;
  let slowestStoredAt = 0;
  let slowestMember = '-';
  for (const r of rows) {
    let last = 0;
    let who = '-';
    for (const m of fleet.members) {
      const t = m.seenAt.get(r.id);
      if (t !== undefined && t > last) {
        last = t;
        who = `${m.id}${m.proxied ? ', behind the droppable network' : ''}`;
      }
    }
    if (last > 0 && last - r.createdAt > maxConvergenceMs) {
      maxConvergenceMs = last - r.createdAt;
      slowestStoredAt = r.createdAt;
      slowestMember = who;
    }
  }

  return {
    acked: fleet.acked.length,
    lost,
    duplicated,
    divergent: divergent.length,
    gaps,
    stored: rows.length,
    maxConvergenceMs: Math.max(0, Math.round(maxConvergenceMs)),
    slowestStoredAt,
    slowestMember,
    settleMs,
    lostExamples,
    divergentExamples,
  };
}
