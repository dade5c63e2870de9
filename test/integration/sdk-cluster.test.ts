// The SDK through a deploy and a crash: 3 instances (child processes) sharing a private Redis and a
// PostgreSQL database; while clients send continuously, one instance is killed with SIGKILL and
// another drained with SIGTERM. Every resolved send must reach every subscriber exactly once, in seq
// order; every failed send must reject with a typed error; none may hang.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, SwitchboardClientError, type SwitchboardClient } from 'switchboard-client';
import type { Message } from 'switchboard-client/protocol';
import type { Cluster } from '../helpers/instance.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { token } from '../helpers/tokens.js';

const CLIENTS = 4;
const SEND_EVERY_MS = 100;

let stack: Stack | undefined;
let cluster: Cluster | undefined;
const clients: SwitchboardClient[] = [];

beforeAll(async () => {
  stack = await startStack('sdk_cluster', 3, {
    SHUTDOWN_NOTICE_MS: '1000',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_MESSAGES: '10000/10s',
    RATE_LIMIT_EVENTS: '10000/10s',
  });
  cluster = stack.cluster;
});

afterAll(async () => {
  for (const c of clients.splice(0)) c.close();
  await stack?.stop();
});

describe('SDK across a kill -9 and a SIGTERM', () => {
  it('delivers every acknowledged message exactly once, in order, to every subscriber; failures are typed; nothing hangs', async () => {
    const [a, b, c] = cluster!.instances as [NonNullable<Cluster['instances'][0]>, NonNullable<Cluster['instances'][0]>, NonNullable<Cluster['instances'][0]>];
    const urls = [a.url, b.url, c.url];
    const delivered: Message[][] = [];
    const instancesSeen: string[][] = [];
    for (let i = 0; i < CLIENTS; i++) {
      // Each client starts on instance i % 3 and moves on to the next address when it must reconnect
      // (a load balancer's job in production). Clients 0 and 3 start on a, which is killed, then go
      // to b, which is drained: they exercise both paths.
      const mine = [...urls.slice(i % 3), ...urls.slice(0, i % 3)];
      const client = createClient({ url: mine, getToken: () => token(`user${i}`), transports: ['websocket'], onError: () => undefined });
      clients.push(client);
      const seen: string[] = [];
      instancesSeen.push(seen);
      client.onStateChange((st) => {
        if (st.instance && seen.at(-1) !== st.instance) seen.push(st.instance);
      });
      const got: Message[] = [];
      delivered.push(got);
      let joined = false;
      client.subscribe('general', { onMessage: (m) => got.push(m), onJoin: () => (joined = true) }, { sinceSeq: 0 });
      await waitFor(() => joined, `client ${i} joined`);
    }

    const sends: Promise<Message>[] = [];
    let sending = true;
    const senders = clients.map(async (client, i) => {
      for (let n = 0; sending; n++) {
        sends.push(client.send('general', `c${i}-${n}`));
        await sleep(SEND_EVERY_MS);
      }
    });

    await sleep(1000);
    expect(await a.kill()).toBe('SIGKILL');
    await sleep(1500);
    const drained = b.stop('SIGTERM');
    await sleep(2500);
    sending = false;
    await Promise.all(senders);
    expect(await drained).toBe(0);

    // None hangs: each send settles within its sendTimeout (30 s by default); allow a margin.
    const outcome = await Promise.race([
      Promise.allSettled(sends),
      sleep(40_000).then(() => {
        throw new Error('a send() promise neither resolved nor rejected');
      }),
    ]);
    const ok = outcome.filter((r): r is PromiseFulfilledResult<Message> => r.status === 'fulfilled').map((r) => r.value);
    const failed = outcome.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    for (const err of failed) expect(err).toBeInstanceOf(SwitchboardClientError);
    expect(ok.length).toBeGreaterThan(sends.length / 2);

    // Every resolved message, at every client, exactly once and in seq order with no gap.
    const acked = new Map(ok.map((m) => [m.id, m]));
    expect(acked.size).toBe(ok.length);
    const maxSeq = Math.max(...ok.map((m) => m.seq));
    for (const [i, got] of delivered.entries()) {
      await waitFor(() => got.length > 0 && got.at(-1)!.seq >= maxSeq, `client ${i} to reach seq ${maxSeq}`, 20_000);
      expect(got.map((m) => m.seq)).toEqual(Array.from({ length: got.length }, (_, k) => k + 1));
      const ids = new Set(got.map((m) => m.id));
      expect(ids.size).toBe(got.length);
      for (const m of ok) expect(ids.has(m.id), `client ${i} got ${m.content} (seq ${m.seq})`).toBe(true);
    }
    // Everyone saw the same history.
    const reference = delivered[0]!.slice(0, maxSeq).map((m) => m.id);
    for (const got of delivered) expect(got.slice(0, maxSeq).map((m) => m.id)).toEqual(reference);

    // All clients ended up on the survivor.
    await waitFor(() => clients.every((cl) => cl.state.status === 'connected' && cl.state.instance === c.id), 'every client on the surviving instance');
    // Client 0 started on the killed instance, client 1 on the drained one; both ended on the survivor.
    expect(instancesSeen[0]![0]).toBe(a.id);
    expect(instancesSeen[1]).toEqual([b.id, c.id]);
    console.log(`sdk-cluster: ${sends.length} sends, ${ok.length} resolved, ${failed.length} rejected (${failed.map((e) => (e as SwitchboardClientError).code).join(',')}), max seq ${maxSeq}`);
  });
});
