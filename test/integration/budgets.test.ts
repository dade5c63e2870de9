/**
 * Budgets over real sockets (issue 13, items 6 and 7): the read budget, presence capped with its total,
 * join/leave flapping damped, and the channels-per-socket limit counting joins in flight.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from 'switchboard-client/protocol';
import { createChannel, unique } from '../helpers/api.js';
import { call, closeAllClients, collect, connect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer({
    MAX_CHANNELS_PER_SOCKET: '5',
    RATE_LIMIT_READS: '100/1m',
    PRESENCE_MAX_USERS: '2',
    PRESENCE_NOTICE_INTERVAL_MS: '500',
  });
});
afterEach(() => closeAllClients());
afterAll(async () => {
  closeAllClients();
  await server?.close();
});

const user = async (label: string) => connect(server.url, await token(unique(label)));

it('10 parallel join_channel with MAX_CHANNELS_PER_SOCKET=5: exactly 5 succeed, the rest RATE_LIMITED', async () => {
  const ids = Array.from({ length: 10 }, (_, i) => unique(`par${i}`));
  for (const id of ids) await createChannel(server.url, id);
  const s = await user('parallel');
  const acks = await Promise.all(ids.map((id) => call(s, 'join_channel', id)));
  expect(acks.filter((a) => a.ok)).toHaveLength(5);
  expect(acks.filter((a) => a.error?.code === ErrorCode.RATE_LIMITED)).toHaveLength(5);
  expect(s.connected).toBe(true);
});

it('history spends the read budget by page size: 5 pages of 200 fit 100 points, the 6th is RATE_LIMITED; the socket stays', async () => {
  const s = await user('reader');
  for (let i = 0; i < 5; i++) expect((await call(s, 'history', { channelId: 'general', limit: 200 })).ok).toBe(true);
  const refused = await call(s, 'history', { channelId: 'general', limit: 200 });
  expect(refused).toMatchObject({ ok: false, error: { code: ErrorCode.RATE_LIMITED } });
  expect(refused.error.retryAfterMs).toBeGreaterThan(0);
  expect(s.connected).toBe(true);
  // Another user's budget is their own.
  expect((await call(await user('other-reader'), 'history', { channelId: 'general', limit: 200 })).ok).toBe(true);
});

it('presence of a channel above PRESENCE_MAX_USERS: the first users by id, the total and truncated: true', async () => {
  const ch = unique('big');
  await createChannel(server.url, ch);
  const ids = ['pa', 'pb', 'pc'].map((p) => unique(p)).sort();
  for (const id of ids) await call(await connect(server.url, await token(id)), 'join_channel', ch);
  const ack = await call(await user('looker'), 'presence', { channelId: ch });
  expect(ack).toEqual({ ok: true, users: ids.slice(0, 2).map((userId) => ({ userId, connections: 1 })), total: 3, truncated: true });
});

it('join/leave flapping: a member gets one notice per interval, and the final state at its end', async () => {
  const ch = unique('flap');
  await createChannel(server.url, ch);
  const member = await user('member');
  await call(member, 'join_channel', ch);
  const joined = collect(member, 'user_joined');
  const left = collect(member, 'user_left');
  const flapper = await user('flapper');
  for (let i = 0; i < 20; i++) {
    expect((await call(flapper, 'join_channel', ch)).ok).toBe(true);
    expect((await call(flapper, 'leave_channel', ch)).ok).toBe(true);
  }
  await waitFor(() => left.length === 1, 'the final user_left at the end of the interval');
  expect(joined).toHaveLength(1);
});
