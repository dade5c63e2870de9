import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresStore } from '../../src/adapters/store/postgres.js';
import { openSqliteStore } from '../../src/adapters/store/sqlite.js';
import { StoreError, type MessageDraft, type MessageStore } from '../../src/ports/message-store.js';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { startCluster, type Cluster } from '../helpers/instance.js';
import { createDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';
import { token } from '../helpers/tokens.js';

const log = pino({ level: 'silent' });

interface Backend {
  store: MessageStore;
  /** A second, independent store on the same database (another instance's pool), where the backend allows it. */
  open(): Promise<MessageStore>;
  close(): Promise<void>;
}

async function sqliteBackend(): Promise<Backend> {
  const store = openSqliteStore(':memory:', log);
  await store.migrate();
  return {
    store,
    open: () => Promise.reject(new Error('an in-memory SQLite store is one process')),
    close: () => store.close(),
  };
}

async function postgresBackend(): Promise<Backend> {
  const db = await createDatabase('contract');
  const opened: MessageStore[] = [];
  const open = async () => {
    const s = openPostgresStore(db.url, log);
    opened.push(s);
    await s.migrate();
    return s;
  };
  const store = await open();
  return {
    store,
    open,
    async close() {
      for (const s of opened) await s.close();
      await db.drop();
    },
  };
}

const BACKENDS = { sqlite: sqliteBackend, postgres: postgresBackend } as const;

let n = 0;
/** A channel id no other test uses (tests share one database per backend). */
const uniqueChannel = (label: string) => `${label}-${process.pid}-${++n}`;

const draft = (channelId: string, i: number | string, userId = 'alice'): MessageDraft => ({
  channelId,
  userId,
  content: `message ${i}`,
  clientMessageId: `c-${i}`,
});

describe.each(['sqlite', 'postgres'] as const)('MessageStore contract on %s', (backendName) => {
  let backend: Backend;
  let store: MessageStore;

  beforeAll(async () => {
    backend = await BACKENDS[backendName]();
    store = backend.store;
  });
  afterAll(async () => {
    await backend?.close();
  });

  const newChannel = async (label: string, isPrivate = false) => {
    const id = uniqueChannel(label);
    await store.createChannel({ id, name: `Name of ${id}`, isPrivate });
    return id;
  };

  it('migrate is idempotent and ping answers', async () => {
    await store.migrate();
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it('assigns gapless seqs 1..n in order, across calls and within a batch', async () => {
    const ch = await newChannel('gapless');
    const single = [];
    for (let i = 1; i <= 5; i++) single.push(await store.append([draft(ch, i)]));
    expect(single.map((r) => r[0]!.message.seq)).toEqual([1, 2, 3, 4, 5]);
    const batch = await store.append(Array.from({ length: 20 }, (_, i) => draft(ch, 100 + i)));
    expect(batch.map((r) => r.message.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 6 + i));
    expect(batch.every((r) => r.duplicate === false)).toBe(true);
    const channel = await store.getChannel(ch);
    expect(channel?.lastSeq).toBe(25);
    const all = await store.history(ch, { limit: 200 });
    expect(all.messages.map((m) => m.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    expect(all.hasMore).toBe(false);
  });

  it('returns messages in the contract shape', async () => {
    const ch = await newChannel('shape');
    const [r] = await store.append([{ channelId: ch, userId: 'bob', content: 'héllo 👋', clientMessageId: 'shape-1' }]);
    const m = r!.message;
    expect(Object.keys(m).sort()).toEqual(['channelId', 'clientMessageId', 'content', 'id', 'seq', 'timestamp', 'userId']);
    expect(m).toMatchObject({ seq: 1, channelId: ch, userId: 'bob', content: 'héllo 👋', clientMessageId: 'shape-1' });
    expect(typeof m.id).toBe('string');
    expect(m.id.length).toBeGreaterThan(0);
    expect(new Date(m.timestamp).toISOString()).toBe(m.timestamp);
    const page = await store.history(ch, { limit: 10 });
    expect(page.messages).toEqual([m]);
  });

  it('gives every message a distinct id, also across channels', async () => {
    const a = await newChannel('ids-a');
    const b = await newChannel('ids-b');
    const results = await store.append([...Array.from({ length: 10 }, (_, i) => draft(a, i)), ...Array.from({ length: 10 }, (_, i) => draft(b, i))]);
    expect(new Set(results.map((r) => r.message.id)).size).toBe(20);
    // Each channel has its own sequence.
    expect(results.slice(0, 10).map((r) => r.message.seq)).toEqual(results.slice(10).map((r) => r.message.seq));
  });

  it('an append of the same (channel, user, clientMessageId) is a duplicate: original returned, nothing stored', async () => {
    const ch = await newChannel('dedup');
    const [first] = await store.append([{ channelId: ch, userId: 'alice', content: 'original', clientMessageId: 'same' }]);
    expect(first!.duplicate).toBe(false);
    const [again] = await store.append([{ channelId: ch, userId: 'alice', content: 'changed content', clientMessageId: 'same' }]);
    expect(again!.duplicate).toBe(true);
    expect(again!.message).toEqual(first!.message);
    expect(again!.message.content).toBe('original');
    const page = await store.history(ch, { limit: 50 });
    expect(page.messages).toHaveLength(1);
    expect((await store.getChannel(ch))?.lastSeq).toBe(1);
    // The next new message continues the sequence without a gap.
    const [next] = await store.append([draft(ch, 'after')]);
    expect(next!.message.seq).toBe(2);
  });

  it('a repeat within one batch is a duplicate of the earlier draft', async () => {
    const ch = await newChannel('dedup-batch');
    const results = await store.append([draft(ch, 1), draft(ch, 2), { ...draft(ch, 1), content: 'retry' }, draft(ch, 3)]);
    expect(results.map((r) => r.duplicate)).toEqual([false, false, true, false]);
    expect(results[2]!.message).toEqual(results[0]!.message);
    expect(results.map((r) => r.message.seq)).toEqual([1, 2, 1, 3]);
    expect((await store.history(ch, { limit: 50 })).messages.map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  it('the same clientMessageId from two users is not a duplicate', async () => {
    const ch = await newChannel('dedup-users');
    const [a, b] = await store.append([
      { channelId: ch, userId: 'alice', content: 'from alice', clientMessageId: 'shared' },
      { channelId: ch, userId: 'bob', content: 'from bob', clientMessageId: 'shared' },
    ]);
    expect(a!.duplicate).toBe(false);
    expect(b!.duplicate).toBe(false);
    expect([a!.message.seq, b!.message.seq]).toEqual([1, 2]);
    const [c] = await store.append([{ channelId: ch, userId: 'carol', content: 'from carol', clientMessageId: 'shared' }]);
    expect(c!.duplicate).toBe(false);
    expect(c!.message.seq).toBe(3);
  });

  it('the same clientMessageId in two channels is not a duplicate', async () => {
    const a = await newChannel('dedup-ch-a');
    const b = await newChannel('dedup-ch-b');
    const [x, y] = await store.append([draft(a, 'x'), draft(b, 'x')]);
    expect(x!.duplicate).toBe(false);
    expect(y!.duplicate).toBe(false);
    expect(x!.message.id).not.toBe(y!.message.id);
  });

  it('a batch naming an unknown channel stores nothing and rejects with not_found', async () => {
    const ch = await newChannel('atomic');
    await store.append([draft(ch, 0)]);
    const err = await store.append([draft(ch, 1), draft(ch, 2), draft(`missing-${randomUUID()}`, 3), draft(ch, 4)]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).kind).toBe('not_found');
    const page = await store.history(ch, { limit: 50 });
    expect(page.messages.map((m) => m.clientMessageId)).toEqual(['c-0']);
    expect((await store.getChannel(ch))?.lastSeq).toBe(1);
    // The ids of the failed batch were not consumed: they store normally now.
    const again = await store.append([draft(ch, 1), draft(ch, 2)]);
    expect(again.map((r) => [r.duplicate, r.message.seq])).toEqual([
      [false, 2],
      [false, 3],
    ]);
  });

  it('an empty append stores nothing', async () => {
    await expect(store.append([])).resolves.toEqual([]);
  });

  describe('history paging', () => {
    let ch: string;
    beforeAll(async () => {
      ch = await newChannel('paging');
      await store.append(Array.from({ length: 30 }, (_, i) => draft(ch, i + 1)));
    });
    const seqs = (p: { messages: { seq: number }[] }) => p.messages.map((m) => m.seq);
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

    it('no cursor: the newest `limit`, oldest first; hasMore when older exist', async () => {
      const p = await store.history(ch, { limit: 10 });
      expect(seqs(p)).toEqual(range(21, 30));
      expect(p.hasMore).toBe(true);
      const all = await store.history(ch, { limit: 30 });
      expect(seqs(all)).toEqual(range(1, 30));
      expect(all.hasMore).toBe(false);
      const more = await store.history(ch, { limit: 50 });
      expect(seqs(more)).toEqual(range(1, 30));
      expect(more.hasMore).toBe(false);
    });

    it('beforeSeq: the `limit` just before it, oldest first; hasMore when older exist', async () => {
      const p = await store.history(ch, { beforeSeq: 21, limit: 10 });
      expect(seqs(p)).toEqual(range(11, 20));
      expect(p.hasMore).toBe(true);
      const last = await store.history(ch, { beforeSeq: 11, limit: 10 });
      expect(seqs(last)).toEqual(range(1, 10));
      expect(last.hasMore).toBe(false);
      const short = await store.history(ch, { beforeSeq: 4, limit: 10 });
      expect(seqs(short)).toEqual([1, 2, 3]);
      expect(short.hasMore).toBe(false);
      const none = await store.history(ch, { beforeSeq: 1, limit: 10 });
      expect(none).toEqual({ messages: [], hasMore: false });
    });

    it('afterSeq: the `limit` just after it, oldest first; hasMore when newer exist', async () => {
      const p = await store.history(ch, { afterSeq: 0, limit: 10 });
      expect(seqs(p)).toEqual(range(1, 10));
      expect(p.hasMore).toBe(true);
      const mid = await store.history(ch, { afterSeq: 15, limit: 10 });
      expect(seqs(mid)).toEqual(range(16, 25));
      expect(mid.hasMore).toBe(true);
      const end = await store.history(ch, { afterSeq: 20, limit: 10 });
      expect(seqs(end)).toEqual(range(21, 30));
      expect(end.hasMore).toBe(false);
      const past = await store.history(ch, { afterSeq: 30, limit: 10 });
      expect(past).toEqual({ messages: [], hasMore: false });
    });

    it('walking back with beforeSeq and forward with afterSeq visits every message once', async () => {
      const back: number[] = [];
      let page = await store.history(ch, { limit: 7 });
      back.unshift(...seqs(page));
      while (page.hasMore) {
        page = await store.history(ch, { beforeSeq: page.messages[0]!.seq, limit: 7 });
        back.unshift(...seqs(page));
      }
      expect(back).toEqual(range(1, 30));
      const fwd: number[] = [];
      let after = 0;
      for (;;) {
        const p = await store.history(ch, { afterSeq: after, limit: 7 });
        fwd.push(...seqs(p));
        if (!p.hasMore) break;
        after = p.messages.at(-1)!.seq;
      }
      expect(fwd).toEqual(range(1, 30));
    });

    it('an empty or unknown channel has an empty page', async () => {
      const empty = await newChannel('paging-empty');
      expect(await store.history(empty, { limit: 10 })).toEqual({ messages: [], hasMore: false });
      expect(await store.history(`unknown-${randomUUID()}`, { afterSeq: 0, limit: 10 })).toEqual({ messages: [], hasMore: false });
    });
  });

  describe('channels', () => {
    it('create returns the channel, get finds it, lastSeq starts at 0', async () => {
      const id = uniqueChannel('create');
      const created = await store.createChannel({ id, name: 'Created', isPrivate: true });
      expect(created).toMatchObject({ id, name: 'Created', isPrivate: true, lastSeq: 0 });
      expect(new Date(created.createdAt).toISOString()).toBe(created.createdAt);
      const got = await store.getChannel(id);
      expect(got).toMatchObject({ id, name: 'Created', isPrivate: true, lastSeq: 0 });
    });

    it('create of a taken id rejects with conflict and changes nothing', async () => {
      const id = uniqueChannel('conflict');
      await store.createChannel({ id, name: 'First', isPrivate: false });
      const err = await store.createChannel({ id, name: 'Second', isPrivate: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('conflict');
      expect(await store.getChannel(id)).toMatchObject({ name: 'First', isPrivate: false });
    });

    it('get of an unknown id, including object-member names, is undefined', async () => {
      for (const id of [`unknown-${randomUUID()}`, '__proto__', 'constructor', 'toString']) {
        expect(await store.getChannel(id)).toBeUndefined();
      }
    });

    it('ids that name object members are ordinary ids once created', async () => {
      const id = `__proto__`;
      // Only one test may create it per database; the sqlite and postgres stores are separate.
      await store.createChannel({ id, name: id, isPrivate: false });
      const [r] = await store.append([draft(id, 1)]);
      expect(r!.message).toMatchObject({ channelId: '__proto__', seq: 1 });
      expect((await store.getChannel(id))?.lastSeq).toBe(1);
    });

    it('ensurePublicChannels creates missing public channels and leaves existing ones alone', async () => {
      const existing = await newChannel('ensure-existing', true);
      const fresh = uniqueChannel('ensure-fresh');
      await store.ensurePublicChannels([existing, fresh]);
      await store.ensurePublicChannels([fresh]);
      expect(await store.getChannel(existing)).toMatchObject({ isPrivate: true });
      expect(await store.getChannel(fresh)).toMatchObject({ id: fresh, isPrivate: false, lastSeq: 0 });
      await store.ensurePublicChannels([]);
    });

    it('list: every channel without a user; public plus member private channels for a user', async () => {
      const pub = await newChannel('list-pub');
      const priv = await newChannel('list-priv', true);
      const other = await newChannel('list-other', true);
      await store.addMember(priv, 'lister');
      const all = (await store.listChannels()).map((c) => c.id);
      expect(all).toEqual(expect.arrayContaining([pub, priv, other]));
      const mine = await store.listChannels('lister');
      const ids = mine.map((c) => c.id);
      expect(ids).toContain(pub);
      expect(ids).toContain(priv);
      expect(ids).not.toContain(other);
      expect(mine.every((c) => !c.isPrivate || c.id === priv)).toBe(true);
      const stranger = (await store.listChannels('stranger')).map((c) => c.id);
      expect(stranger).toContain(pub);
      expect(stranger).not.toContain(priv);
    });
  });

  describe('members', () => {
    it('add is idempotent; remove is idempotent and says whether there was a membership', async () => {
      const ch = await newChannel('members', true);
      expect(await store.isMember(ch, 'm1')).toBe(false);
      await store.addMember(ch, 'm1');
      await store.addMember(ch, 'm1');
      expect(await store.isMember(ch, 'm1')).toBe(true);
      expect(await store.isMember(ch, 'm2')).toBe(false);
      expect(await store.removeMember(ch, 'm1')).toBe(true);
      expect(await store.removeMember(ch, 'm1')).toBe(false);
      expect(await store.isMember(ch, 'm1')).toBe(false);
      expect(await store.removeMember(ch, 'never')).toBe(false);
    });

    it('remove records when access was revoked, also without a membership; a later remove moves it on; per channel and user', async () => {
      const ch = await newChannel('revoked', true);
      const other = await newChannel('revoked-other', true);
      expect(await store.revokedAt(ch, 'r1')).toBeUndefined();
      await store.addMember(ch, 'r1');
      const before = Date.now();
      await store.removeMember(ch, 'r1');
      const first = await store.revokedAt(ch, 'r1');
      expect(first).toBeGreaterThanOrEqual(before);
      expect(first).toBeLessThanOrEqual(Date.now());
      // A grant held only by a token is revoked the same way: no membership, still recorded.
      await store.removeMember(ch, 'token-only');
      expect(await store.revokedAt(ch, 'token-only')).toBeGreaterThanOrEqual(before);
      await new Promise((r) => setTimeout(r, 5));
      await store.removeMember(ch, 'r1');
      expect(await store.revokedAt(ch, 'r1')).toBeGreaterThan(first!);
      expect(await store.revokedAt(other, 'r1')).toBeUndefined();
      expect(await store.revokedAt(ch, 'r2')).toBeUndefined();
      // A re-grant adds the membership and keeps the record.
      await store.addMember(ch, 'r1');
      expect(await store.isMember(ch, 'r1')).toBe(true);
    });

    it('membership is per channel', async () => {
      const a = await newChannel('members-a', true);
      const b = await newChannel('members-b', true);
      await store.addMember(a, 'u');
      expect(await store.isMember(a, 'u')).toBe(true);
      expect(await store.isMember(b, 'u')).toBe(false);
    });
  });
});

describe('MessageStore on PostgreSQL: several writers', () => {
  let db: TestDatabase;
  let a: MessageStore;
  let b: MessageStore;
  beforeAll(async () => {
    db = await createDatabase('contract_concurrency');
    a = openPostgresStore(db.url, log);
    b = openPostgresStore(db.url, log);
    // Both instances migrate at start-up, at the same time.
    await Promise.all([a.migrate(), b.migrate()]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it('two store instances appending to one channel at once get distinct, gapless seqs 1..400', async () => {
    const ch = 'concurrent';
    await a.createChannel({ id: ch, name: ch, isPrivate: false });
    const writer = (store: MessageStore, user: string) => {
      // 200 appends each: 40 batches of 5, 8 batches in flight at a time per store.
      const batches = Array.from({ length: 40 }, (_, bi) => Array.from({ length: 5 }, (_, j) => draft(ch, bi * 5 + j, user)));
      const lanes = Array.from({ length: 8 }, async (_, lane) => {
        const out = [];
        for (let bi = lane; bi < batches.length; bi += 8) out.push(...(await store.append(batches[bi]!)));
        return out;
      });
      return Promise.all(lanes).then((r) => r.flat());
    };
    const [ra, rb] = await Promise.all([writer(a, 'writer-a'), writer(b, 'writer-b')]);
    const results = [...ra, ...rb];
    expect(results).toHaveLength(400);
    expect(results.every((r) => !r.duplicate)).toBe(true);
    const seqs = results.map((r) => r.message.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    // Within one batch the seqs are consecutive and in draft order.
    for (let i = 0; i < ra.length; i += 5) {
      const s = ra.slice(i, i + 5).map((r) => r.message.seq);
      expect(s).toEqual(Array.from({ length: 5 }, (_, j) => s[0]! + j));
    }
    expect((await b.getChannel(ch))?.lastSeq).toBe(400);
    const stored: number[] = [];
    let after = 0;
    for (;;) {
      const p = await b.history(ch, { afterSeq: after, limit: 200 });
      stored.push(...p.messages.map((m) => m.seq));
      if (!p.hasMore) break;
      after = p.messages.at(-1)!.seq;
    }
    expect(stored).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  });

  it('the same send retried on two instances at once is stored once', async () => {
    const ch = 'concurrent-dedup';
    await a.createChannel({ id: ch, name: ch, isPrivate: false });
    const same = Array.from({ length: 20 }, (_, i) => draft(ch, i, 'retrier'));
    const [ra, rb] = await Promise.all([
      Promise.all(same.map((d) => a.append([d]))),
      Promise.all(same.map((d) => b.append([d]))),
    ]);
    for (let i = 0; i < 20; i++) {
      const x = ra[i]![0]!;
      const y = rb[i]![0]!;
      expect(x.message.id).toBe(y.message.id);
      expect([x.duplicate, y.duplicate].sort()).toEqual([false, true]);
    }
    const page = await a.history(ch, { limit: 200 });
    expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('a store whose database is unreachable rejects with unavailable', async () => {
    const down = openPostgresStore('postgres://postgres@127.0.0.1:1/none', log, { connectTimeoutMs: 500 });
    try {
      const err = await down.append([draft('x', 1)]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('unavailable');
      const ping = await down.ping().catch((e: unknown) => e);
      expect((ping as StoreError).kind).toBe('unavailable');
    } finally {
      await down.close();
    }
  });
});

describe('two server processes on one PostgreSQL', () => {
  let db: TestDatabase;
  let redis: PrivateRedis;
  let cluster: Cluster;
  beforeAll(async () => {
    db = await createDatabase('contract_cluster');
    redis = await startRedis();
    cluster = await startCluster(2, { DATABASE_URL: db.url, REDIS_URL: redis.url, RATE_LIMIT_MESSAGES: '1000/10s' });
  });
  afterAll(async () => {
    closeAllClients();
    await cluster?.stop();
    await redis?.stop();
    await db?.drop();
  });

  it('clients of both instances sending at once to one channel get distinct, gapless seqs', async () => {
    const [i1, i2] = cluster.instances;
    const clients = await Promise.all([
      connect(i1!.url, await token('p1')),
      connect(i1!.url, await token('p2')),
      connect(i2!.url, await token('p3')),
      connect(i2!.url, await token('p4')),
    ]);
    for (const c of clients) expect((await call(c, 'join_channel', 'general')).ok).toBe(true);
    const perClient = 40;
    const acks = await Promise.all(
      clients.map((c, ci) =>
        Promise.all(
          Array.from({ length: perClient }, (_, i) => call(c, 'send_message', { channelId: 'general', content: `c${ci} m${i}`, clientMessageId: `c${ci}-${i}` })),
        ),
      ),
    );
    const all = acks.flat();
    expect(all.every((a) => a.ok === true && a.duplicate === undefined)).toBe(true);
    const total = clients.length * perClient;
    const seqs = all.map((a) => a.message.seq as number).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // What the store holds, read through the other instance.
    const page = await call(clients[2]!, 'history', { channelId: 'general', limit: 200 });
    expect(page.ok).toBe(true);
    expect(page.messages.map((m: { seq: number }) => m.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(new Set(page.messages.map((m: { id: string }) => m.id)).size).toBe(total);
  });
});
