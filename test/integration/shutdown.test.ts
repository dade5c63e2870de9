import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { call, closeAllClients, collect, connect, next } from '../helpers/client.js';
import { startInstance, type Instance } from '../helpers/instance.js';
import { waitFor } from '../helpers/ports.js';
import { createDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';
import { token } from '../helpers/tokens.js';

let redis: PrivateRedis;
let db: TestDatabase;
const started: Instance[] = [];

beforeAll(async () => {
  redis = await startRedis();
  db = await createDatabase('shutdown');
});
afterEach(async () => {
  closeAllClients();
  await Promise.all(started.splice(0).map((i) => i.kill()));
});
afterAll(async () => {
  await redis?.stop();
  await db?.drop();
});

const NOTICE_MS = 1500;

async function launch(options: { viaNpm?: boolean } = {}) {
  const i = await startInstance({
    ...options,
    env: { REDIS_URL: redis.url, DATABASE_URL: db.url, SHUTDOWN_NOTICE_MS: String(NOTICE_MS), SHUTDOWN_TIMEOUT_MS: '15000' },
  });
  started.push(i);
  return i;
}

async function member(url: string, user: string) {
  const s = await connect(url, await token(user));
  expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
  return s;
}

describe('graceful shutdown (SIGTERM)', () => {
  test('readiness first, notice to local sockets only, in-flight sends finish, exit 0', async () => {
    const a = await launch();
    const b = await launch();
    const a1 = await member(a.url, 'ann');
    const a2 = await member(a.url, 'abe');
    const b1 = await member(b.url, 'bea');
    const notB = collect(b1, 'server_shutdown');

    // When a client of A hears the notice, A must already be out of rotation and refuse new sessions.
    const seenAtNotice = new Promise<{ ready: number; health: number; handshake: number; delay: number }>((resolve) => {
      a1.once('server_shutdown', async ({ reconnectDelay }) => {
        const [ready, health, handshake] = await Promise.all([
          fetch(`${a.url}/readyz`).then((r) => r.status),
          fetch(`${a.url}/healthz`).then((r) => r.status),
          fetch(`${a.url}/socket.io/?EIO=4&transport=polling`).then((r) => r.status),
        ]);
        resolve({ ready, health, handshake, delay: reconnectDelay });
      });
    });
    const noticeA2 = next(a2, 'server_shutdown', 10_000);

    // A burst of sends is in flight when the signal arrives: each acknowledged one must be stored.
    const sends = Array.from({ length: 30 }, (_, i) =>
      call(a1, 'send_message', { channelId: 'general', content: `burst ${i}`, clientMessageId: `burst-${i}` }).catch(() => undefined),
    );
    a.proc.kill('SIGTERM');

    const atNotice = await seenAtNotice;
    expect(atNotice.ready).toBe(503);
    expect(atNotice.health).toBe(200);
    expect(atNotice.handshake).toBe(503);
    expect(atNotice.delay).toBeGreaterThanOrEqual(0);
    expect(atNotice.delay).toBeLessThanOrEqual(NOTICE_MS);
    expect((await noticeA2).reconnectDelay).toBeLessThanOrEqual(NOTICE_MS);

    const acked = (await Promise.all(sends)).filter((r) => r?.ok).map((r) => r.message.clientMessageId as string);
    expect(await a.exited).toBe(0);
    expect(notB).toEqual([]);
    expect(b1.connected).toBe(true);

    const history = await call(b1, 'history', { channelId: 'general', limit: 200 });
    const stored = new Set(history.messages.map((m: { clientMessageId: string }) => m.clientMessageId));
    for (const id of acked) expect(stored.has(id)).toBe(true);
    expect(acked.length).toBeGreaterThan(0);
  });

  test('remaining sockets are disconnected by the server after the notice', async () => {
    const a = await launch();
    const s = await member(a.url, 'stubborn');
    const reasons: string[] = [];
    s.on('disconnect', (reason) => reasons.push(reason));
    a.proc.kill('SIGTERM');
    await waitFor(() => reasons.length > 0, 'server disconnect', 10_000);
    expect(reasons[0]).toBe('io server disconnect');
    expect(await a.exited).toBe(0);
  });

  test('SIGTERM sent to the `npm start` process drains the server the same way', async () => {
    const a = await launch({ viaNpm: true });
    const s = await member(a.url, 'npmuser');
    const notice = next(s, 'server_shutdown', 10_000);
    a.proc.kill('SIGTERM');
    expect((await notice).reconnectDelay).toBeLessThanOrEqual(NOTICE_MS);
    expect(await a.exited).toBe(0);
    // The server itself is gone, not only npm.
    await waitFor(async () => (await fetch(`${a.url}/healthz`).catch(() => undefined)) === undefined, 'the port to close');
  });
});
