import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { createClient, isSwitchboardClientError, type SwitchboardClient } from 'switchboard-client';
import type { Message } from 'switchboard-client/protocol';
import { closeAllClients, collect, connect } from '../helpers/client.js';
import { startInstance, type Cluster, type Instance } from '../helpers/instance.js';
import { sleep, waitFor } from '../helpers/ports.js';
import type { PrivateRedis } from '../helpers/redis.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { token } from '../helpers/tokens.js';

// Issue 3's acceptance: steady traffic from SDK clients on all 3 instances while Redis restarts, and
// while every instance is restarted in turn with SIGTERM. Nothing acknowledged may be lost, nothing
// stored twice, and every member's view must end equal to the store.

let stack: Stack;
let redis: PrivateRedis;
let cluster: Cluster;
const clients: SwitchboardClient[] = [];

beforeAll(async () => {
  stack = await startStack('converge', 3, { RATE_LIMIT_MESSAGES: '100000/10s', RATE_LIMIT_EVENTS: '100000/10s', SHUTDOWN_NOTICE_MS: '1000' });
  ({ redis, cluster } = stack);
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  closeAllClients();
});
afterAll(async () => {
  await stack?.stop();
});

const admin = async () => ({ authorization: `Bearer ${await token('root', { admin: true })}`, 'content-type': 'application/json' });

async function createChannel(id: string) {
  const res = await fetch(`${cluster.instances[0]!.url}/api/channels`, { method: 'POST', headers: await admin(), body: JSON.stringify({ id }) });
  expect(res.status).toBe(201);
}

/** The store's whole sequence of a channel, read through the REST API of any live instance. */
async function stored(channelId: string): Promise<Message[]> {
  const out: Message[] = [];
  for (;;) {
    const live = cluster.instances.find((i) => i.proc.exitCode === null)!;
    const res = await fetch(`${live.url}/api/channels/${channelId}/messages?afterSeq=${out.length ? out.at(-1)!.seq : 0}&limit=200`, { headers: await admin() });
    const page = (await res.json()) as { messages: Message[]; hasMore: boolean };
    out.push(...page.messages);
    if (!page.hasMore) return out;
  }
}

interface Member {
  user: string;
  client: SwitchboardClient;
  seen: Message[];
  acked: Message[];
  failed: unknown[];
  sending: Promise<void>;
  stop(): void;
}

/** An SDK client on `home` first (then the others), subscribed from seq 0, sending every `everyMs`. */
function member(user: string, home: number, channelId: string, everyMs: number): Member {
  const urls = [0, 1, 2].map((k) => cluster.instances[(home + k) % 3]!).map((i) => i.url);
  const client = createClient({ url: urls, getToken: () => token(user), reconnectionDelay: 200, reconnectionDelayMax: 1000, shutdownJitter: 200, onError: () => undefined });
  clients.push(client);
  const m: Member = { user, client, seen: [], acked: [], failed: [], sending: Promise.resolve(), stop: () => undefined };
  client.subscribe(channelId, { onMessage: (msg) => void m.seen.push(msg) }, { sinceSeq: 0 });
  let running = true;
  m.stop = () => void (running = false);
  m.sending = (async () => {
    const pending: Promise<void>[] = [];
    for (let n = 0; running; n++) {
      pending.push(
        client.send(channelId, `${user} #${n}`).then(
          (msg) => void m.acked.push(msg),
          (err) => void m.failed.push(err),
        ),
      );
      await sleep(everyMs);
    }
    await Promise.all(pending);
  })();
  return m;
}

async function settleAndCheck(channelId: string, members: Member[]) {
  for (const m of members) m.stop();
  await Promise.all(members.map((m) => m.sending));
  const store = await stored(channelId);
  const seqs = store.map((m) => m.seq);
  // Gapless: 1..n.
  expect(seqs).toEqual(Array.from({ length: store.length }, (_, i) => i + 1));
  // Nothing stored twice: every send has a unique content and clientMessageId.
  expect(new Set(store.map((m) => m.content)).size).toBe(store.length);
  expect(new Set(store.map((m) => `${m.userId}/${m.clientMessageId}`)).size).toBe(store.length);
  // Every acknowledged message is in the store, as acknowledged.
  const byId = new Map(store.map((m) => [m.id, m]));
  const acked = members.flatMap((m) => m.acked);
  for (const a of acked) expect(byId.get(a.id)).toEqual(a);
  // Failed sends failed with a typed error, and there were few of them.
  for (const e of members.flatMap((m) => m.failed)) expect(isSwitchboardClientError(e)).toBe(true);
  // Every member's view converges to the store: each seq once, in order, nothing missing.
  await waitFor(() => members.every((m) => m.seen.length >= store.length), 'members to converge', 20_000, 100);
  for (const m of members) expect(m.seen.map((x) => x.seq)).toEqual(seqs);
  return { stored: store.length, acked: acked.length, failed: members.flatMap((m) => m.failed).length };
}

describe('convergence under steady traffic', () => {
  test('Redis restarted: every client’s view of the channel equals the store’s sequence; no process crashed', async () => {
    await createChannel('steady');
    const members = [0, 1, 2].flatMap((home) => [member(`u${home}a`, home, 'steady', 80), member(`u${home}b`, home, 'steady', 80)]);
    await waitFor(() => members.every((m) => m.acked.length >= 3), 'traffic to flow');
    await redis.restart();
    await sleep(1500);
    const r = await settleAndCheck('steady', members);
    expect(r.acked).toBeGreaterThan(50);
    for (const i of cluster.instances) expect(i.proc.exitCode).toBeNull();
  });

  test.each([
    { via: 'node', viaNpm: false },
    { via: 'npm start', viaNpm: true },
  ])('rolling restart with SIGTERM to $via: no acknowledged message lost, none stored twice, others never told, each exits 0', async ({ via, viaNpm }) => {
    const channel = viaNpm ? 'rolling-npm' : 'rolling';
    await createChannel(channel);
    if (viaNpm) {
      // Same ports and ids, now each under `npm start`: the signal goes to npm, not to the server.
      for (let k = 0; k < 3; k++) {
        const old = cluster.instances[k]!;
        await old.kill();
        cluster.instances[k] = await startInstance({ id: old.id, port: old.port, viaNpm: true, env: stack.env });
      }
    }
    const tag = via === 'node' ? 'r' : 'n';
    const members = [0, 1, 2].flatMap((home) => [member(`${tag}${home}a`, home, channel, 100), member(`${tag}${home}b`, home, channel, 100)]);
    await waitFor(() => members.every((m) => m.acked.length >= 3), 'traffic to flow');

    for (let k = 0; k < 3; k++) {
      const target = cluster.instances[k]!;
      const others = cluster.instances.filter((i) => i !== target);
      // Observers on the instances that keep running must hear no server_shutdown.
      const observers = await Promise.all(others.map(async (i) => collect(await connect(i.url, await token(`obs${k}-${i.port}`)), 'server_shutdown')));
      const code = await target.stop('SIGTERM');
      expect(code).toBe(0);
      expect(observers.flat()).toEqual([]);
      const replacement: Instance = await target.restart();
      cluster.instances[k] = replacement;
      await sleep(300);
    }
    await sleep(1000);
    const r = await settleAndCheck(channel, members);
    expect(r.acked).toBeGreaterThan(50);
  });
});
