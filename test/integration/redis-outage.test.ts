import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Message } from 'switchboard-client/protocol';
import { call, closeAllClients, collect, connect, type TestSocket } from '../helpers/client.js';
import type { Cluster } from '../helpers/instance.js';
import { waitFor } from '../helpers/ports.js';
import { rssOf } from '../helpers/processes.js';
import type { PrivateRedis } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { token } from '../helpers/tokens.js';

let stack: Stack;
let redis: PrivateRedis;
let cluster: Cluster;

beforeAll(async () => {
  stack = await startStack('outage', 2, { RATE_LIMIT_MESSAGES: '10000/10s', RATE_LIMIT_EVENTS: '10000/10s' });
  ({ redis, cluster } = stack);
});
afterEach(() => closeAllClients());
afterAll(async () => {
  closeAllClients();
  await stack?.stop();
});

const readyz = async (url: string) => {
  const r = await fetch(`${url}/readyz`);
  return { status: r.status, body: (await r.json()) as { checks: Record<string, string>; reasons?: string[] } };
};

/**
 * A member's view of a channel, kept the way a client should: live messages by seq, and on `resync`
 * (or a gap) everything after the highest contiguous seq fetched from history.
 */
function view(socket: TestSocket, channelId: string) {
  const bySeq = new Map<number, Message>();
  const contiguous = () => {
    let n = 0;
    while (bySeq.has(n + 1)) n++;
    return n;
  };
  const fill = async () => {
    for (;;) {
      const page = await call(socket, 'history', { channelId, afterSeq: contiguous(), limit: 200 });
      for (const m of page.messages as Message[]) bySeq.set(m.seq, m);
      if (!page.hasMore) return;
    }
  };
  const resyncs = collect(socket, 'resync');
  socket.on('new_message', (m) => void bySeq.set(m.seq, m));
  // A fill still running when the test closes the socket is abandoned; any other failure surfaces.
  socket.on('resync', () => void fill().catch((err: unknown) => {
    if (socket.connected) throw err;
  }));
  return { bySeq, resyncs, fill, seqs: () => [...bySeq.keys()].sort((a, b) => a - b) };
}

async function member(url: string, user: string, channel = 'general') {
  const s = await connect(url, await token(user), { transports: ['websocket'] });
  expect((await call(s, 'join_channel', channel)).ok).toBe(true);
  return s;
}

describe('Redis down', () => {
  test('an instance keeps serving its local clients, reports broker: down, and converges when Redis is back', async () => {
    const [A, B] = cluster.instances as [NonNullable<Cluster['instances'][0]>, NonNullable<Cluster['instances'][0]>];
    const a1 = await member(A.url, 'ann');
    const a2 = await member(A.url, 'abe');
    const b1 = await member(B.url, 'bea');
    const a2view = view(a2, 'general');
    const b1view = view(b1, 'general');
    expect((await call(a1, 'send_message', { channelId: 'general', content: 'before', clientMessageId: 'before' })).ok).toBe(true);
    await waitFor(() => b1view.bySeq.size === 1, 'first message on B');

    await redis.kill();
    await waitFor(async () => (await readyz(A.url)).status === 503, 'A to report not ready');
    const down = await readyz(A.url);
    expect(down.body.checks['broker']).toBe('down');
    expect(down.body.reasons).toContain('broker: down');
    expect((await fetch(`${A.url}/healthz`)).status).toBe(200);

    // Local clients still chat; every message is stored.
    const rssBefore = rssOf(A.proc.pid!);
    const acks = [];
    for (let i = 0; i < 300; i++) acks.push(call(a1, 'send_message', { channelId: 'general', content: `down ${i}`, clientMessageId: `down-${i}` }));
    const results = await Promise.all(acks);
    expect(results.every((r) => r.ok)).toBe(true);
    await waitFor(() => a2view.bySeq.size === 301, 'local delivery of all 300 while Redis is down');
    // Nothing queues up for the broker while it is away (generous bound: the heap may settle).
    expect(rssOf(A.proc.pid!) - rssBefore).toBeLessThan(40_000 * 1024);

    await redis.start();
    await waitFor(async () => (await readyz(A.url)).status === 200 && (await readyz(B.url)).status === 200, 'both ready again', 15_000);
    // B's member missed the broadcasts: it is told to resync and ends up with the store's sequence.
    await waitFor(() => b1view.resyncs.length > 0, 'resync on B');
    await waitFor(() => b1view.seqs().length === 301, 'B to converge', 10_000);
    expect(b1view.seqs()).toEqual(Array.from({ length: 301 }, (_, i) => i + 1));

    // Subscriptions were restored: new messages cross instances again, and presence was re-registered.
    expect((await call(a1, 'send_message', { channelId: 'general', content: 'after', clientMessageId: 'after' })).ok).toBe(true);
    await waitFor(() => b1view.bySeq.has(302), 'cross-instance delivery after Redis returned');
    const presence = await call(b1, 'presence', { channelId: 'general' });
    expect(presence.users.map((u: { userId: string }) => u.userId)).toEqual(['abe', 'ann', 'bea']);
    for (const i of cluster.instances) expect(i.proc.exitCode).toBeNull();
  });

  test('a paused Redis (SIGSTOP) is noticed; local delivery goes on; clients converge after SIGCONT', async () => {
    const [A, B] = cluster.instances as [NonNullable<Cluster['instances'][0]>, NonNullable<Cluster['instances'][0]>];
    await createChannel(A.url, 'paused');
    const a1 = await member(A.url, 'ann', 'paused');
    const a2 = await member(A.url, 'abe', 'paused');
    const b1 = await member(B.url, 'bea', 'paused');
    const a2view = view(a2, 'paused');
    const b1view = view(b1, 'paused');

    redis.pause();
    try {
      await waitFor(async () => (await readyz(A.url)).body.checks['broker'] === 'down', 'A to notice the stall', 10_000);
      for (let i = 0; i < 20; i++) {
        expect((await call(a1, 'send_message', { channelId: 'paused', content: `p${i}`, clientMessageId: `p${i}` })).ok).toBe(true);
      }
      await waitFor(() => a2view.bySeq.size === 20, 'local delivery while paused');
    } finally {
      redis.resume();
    }
    await waitFor(() => b1view.seqs().length === 20, 'B to converge after SIGCONT', 15_000);
    expect(b1view.seqs()).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const i of cluster.instances) expect(i.proc.exitCode).toBeNull();
  });
});

async function createChannel(url: string, id: string) {
  const res = await fetch(`${url}/api/channels`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token('root', { admin: true })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id }),
  });
  expect(res.status).toBe(201);
}
