// The SDK against real in-process servers: token refresh, the offline outbox, gap fill, typed errors.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ChannelStream, createClient, SwitchboardClientError, type CreateClientOptions, type SwitchboardClient, type TokenContext } from 'switchboard-client';
import type { Message } from 'switchboard-client/protocol';
import { call, closeAllClients, collect as collectEvents, connect } from '../helpers/client.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';

const clients: SwitchboardClient[] = [];
const servers: TestServer[] = [];
const dirs: string[] = [];

function client(opts: Partial<CreateClientOptions> & Pick<CreateClientOptions, 'url'>, user = 'alice'): SwitchboardClient {
  const c = createClient({
    getToken: () => token(user),
    transports: ['websocket'],
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    onError: () => undefined,
    ...opts,
  });
  clients.push(c);
  return c;
}

async function server(env: Record<string, string> = {}, options: Parameters<typeof startServer>[1] = {}): Promise<TestServer> {
  const s = await startServer(env, options);
  servers.push(s);
  return s;
}

/** Subscribes and collects what the app is handed; resolves once the first join is answered. */
async function collect(c: SwitchboardClient, channelId: string, sinceSeq?: number): Promise<Message[]> {
  const got: Message[] = [];
  let joined = false;
  c.subscribe(channelId, { onMessage: (m) => got.push(m), onJoin: () => (joined = true) }, sinceSeq === undefined ? {} : { sinceSeq });
  await waitFor(() => joined, `${channelId} joined`);
  return got;
}

const seqs = (ms: Message[]) => ms.map((m) => m.seq);

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  closeAllClients();
  for (const s of servers.splice(0)) await s.close().catch(() => undefined);
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('SDK: token refresh', () => {
  it('asks for a new token when the handshake is refused and when the session expires, and keeps the stream whole', async () => {
    const s = await server();
    const reasons: TokenContext['reason'][] = [];
    // 1st: already expired (refused at the handshake); 2nd: expires in 2 s (the server ends the session); then good.
    const c = client({
      url: s.url,
      getToken: (ctx) => {
        reasons.push(ctx.reason);
        const n = reasons.length;
        return token('alice', { ttl: n === 1 ? -60 : n === 2 ? 2 : 3600 });
      },
    });
    const got = await collect(c, 'general');
    expect(reasons.slice(0, 2)).toEqual(['connect', 'expired']);
    const first = await c.send('general', 'before expiry');
    // The server ends the session at the token's expiry; the SDK fetches a fresh token and comes back.
    await waitFor(() => reasons.length >= 3 && c.state.status === 'connected', 'a third token and a new connection', 10_000);
    expect(reasons[2]).toBe('expired');
    const second = await c.send('general', 'after expiry');
    await waitFor(() => got.length >= 2, 'both messages delivered');
    expect(seqs(got)).toEqual([first.seq, second.seq]);
    expect(got.map((m) => m.content)).toEqual(['before expiry', 'after expiry']);
  });
});

describe('SDK: offline outbox', () => {
  it('keeps sends made while the server is down and delivers each exactly once after it comes back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-sdk-'));
    dirs.push(dir);
    const port = await freePort();
    const env = { PORT: String(port), DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}` };
    const first = await server(env);
    const sender = client({ url: first.url });
    const reader = client({ url: first.url }, 'bob');
    await collect(sender, 'general');
    const got = await collect(reader, 'general');
    const before = await sender.send('general', 'online');

    // The server goes away (it closes every socket: "io server disconnect", which socket.io-client
    // itself would not retry); the sends below are made while nobody can answer them.
    await first.close();
    servers.splice(servers.indexOf(first), 1);
    await waitFor(() => sender.state.status === 'reconnecting', 'the sender to notice');
    let settled = 0;
    const pending = ['offline 1', 'offline 2', 'offline 3'].map((text) => sender.send('general', text).finally(() => settled++));
    expect(sender.state.status).not.toBe('connected');

    await server(env);
    const sent = await Promise.all(pending);
    expect(settled).toBe(3);
    await waitFor(() => got.length >= 4, 'the reader to catch up');
    expect(seqs(got)).toEqual([before.seq, ...sent.map((m) => m.seq)]);
    expect(got.map((m) => m.content)).toEqual(['online', 'offline 1', 'offline 2', 'offline 3']);
    // Stored once each: the channel holds exactly these four.
    const page = await reader.history({ channelId: 'general' });
    expect(page.messages.map((m) => m.content)).toEqual(['online', 'offline 1', 'offline 2', 'offline 3']);
  });
});

describe('SDK: gap fill', () => {
  it('fetches a message whose broadcast was lost (stored, then the sender crashed) when a later seq arrives', async () => {
    // The server's fault hook fails between store and broadcast: the message is stored, nobody hears of it.
    const s = await server({}, {
      afterStore: (m) => {
        if (m.content === 'never broadcast') throw new Error('crash between store and broadcast');
      },
    });
    const reader = client({ url: s.url }, 'bob');
    const got = await collect(reader, 'general');
    const raw = await connect(s.url, await token('carol'));
    await call(raw, 'join_channel', 'general');
    const lost = await call(raw, 'send_message', { channelId: 'general', content: 'never broadcast', clientMessageId: 'c-1' });
    expect(lost.ok).toBe(false);
    const after = await call(raw, 'send_message', { channelId: 'general', content: 'broadcast', clientMessageId: 'c-2' });
    expect(after.ok).toBe(true);
    await waitFor(() => got.length >= 2, 'both messages, the lost one filled from history');
    expect(got.map((m) => [m.seq, m.content])).toEqual([
      [1, 'never broadcast'],
      [2, 'broadcast'],
    ]);
  });

  it('re-joins with sinceSeq after a reconnect and pages through more than one catch-up page', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-sdk-'));
    dirs.push(dir);
    const port = await freePort();
    const env = { PORT: String(port), DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}`, RATE_LIMIT_MESSAGES: '10000/1s', RATE_LIMIT_EVENTS: '10000/1s' };
    const first = await server(env);
    const reader = client({ url: first.url }, 'bob');
    const got = await collect(reader, 'general');
    await first.close();
    servers.splice(servers.indexOf(first), 1);
    await waitFor(() => reader.state.status === 'reconnecting', 'the reader to notice');
    // While the reader is away, 450 messages are stored (more than one 200-message catch-up page).
    const second = await server(env);
    const raw = await connect(second.url, await token('carol'));
    await call(raw, 'join_channel', 'general');
    for (let i = 1; i <= 450; i++) {
      const r = await call(raw, 'send_message', { channelId: 'general', content: `m${i}`, clientMessageId: `k${i}` });
      expect(r.ok).toBe(true);
    }
    await waitFor(() => got.length >= 450, 'the reader to catch up', 20_000);
    expect(seqs(got)).toEqual(Array.from({ length: 450 }, (_, i) => i + 1));
  });
});

describe('ChannelStream', () => {
  it('hands out each seq once, in order, whatever the arrival order and repeats', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.array(fc.nat(), { maxLength: 120 }), fc.integer({ min: 0, max: 2 ** 31 }), (n, extra, salt) => {
        const msgs = Array.from({ length: n }, (_, i) => ({ seq: i + 1 }) as Message);
        const arrivals = [...msgs, ...extra.map((k) => msgs[k % n]!)];
        // A deterministic shuffle driven by fast-check's values.
        const order = arrivals.map((m, i) => ({ m, key: ((i + 1) * 2654435761 + salt) % 4294967296 })).sort((x, y) => x.key - y.key);
        const out: number[] = [];
        const stream = new ChannelStream((m) => out.push(m.seq), 0);
        for (const { m } of order) stream.push(m);
        expect(out).toEqual(msgs.map((m) => m.seq));
        expect(stream.hasGap).toBe(false);
      }),
    );
  });

  it('waits for the start before delivering, and drops what came before it', () => {
    const out: number[] = [];
    const stream = new ChannelStream((m) => out.push(m.seq));
    for (const seq of [5, 7, 6, 4]) stream.push({ seq } as Message);
    expect(out).toEqual([]);
    stream.start(5);
    expect(out).toEqual([6, 7]);
  });
});

describe('SDK: typing, presence, unsubscribe', () => {
  it('throttles typing client-side, reports presence, and stops delivering after unsubscribe', async () => {
    const s = await server();
    const alice = client({ url: s.url });
    const bob = client({ url: s.url }, 'bob');
    const typed: string[] = [];
    const left: string[] = [];
    let bobJoined = false;
    const bobGot: Message[] = [];
    await collect(alice, 'general');
    alice.subscribe('general', { onPresence: (e) => e.type === 'left' && left.push(e.userId) });
    const stop = bob.subscribe('general', {
      onMessage: (m) => bobGot.push(m),
      onTyping: (e) => typed.push(e.userId),
      onJoin: () => (bobJoined = true),
    });
    await waitFor(() => bobJoined, 'bob joined');

    const signals = [1, 2, 3, 4, 5].map(() => alice.typing('general'));
    expect(signals).toEqual([true, false, false, false, false]);
    await waitFor(() => typed.length === 1, 'one typing signal at bob');
    expect(typed).toEqual(['alice']);

    const users = await alice.presence('general');
    expect(users.map((u) => u.userId).sort()).toEqual(['alice', 'bob']);

    await alice.send('general', 'one');
    await waitFor(() => bobGot.length === 1, 'bob got the first message');
    stop();
    await waitFor(() => left.includes('bob'), 'bob to leave');
    const later = await alice.send('general', 'two');
    expect(later.seq).toBe(2);
    const page = await bob.history({ channelId: 'general', afterSeq: 0 });
    expect(page.messages.map((m) => m.content)).toEqual(['one', 'two']);
    expect(bobGot.map((m) => m.content)).toEqual(['one']);
  });
});

describe('SDK: batched frames', () => {
  it('delivers a burst the same way whether it arrives as new_messages (batch) or as single new_message frames', async () => {
    const s = await server({ RATE_LIMIT_MESSAGES: '10000/10s', RATE_LIMIT_EVENTS: '10000/10s' });
    const batched = client({ url: s.url, batch: true }, 'bob');
    const plain = client({ url: s.url, batch: false }, 'carol');
    const gotBatched = await collect(batched, 'general');
    const gotPlain = await collect(plain, 'general');
    // A raw batch member shows that the burst really went out in new_messages frames.
    const probe = await connect(s.url, await token('dave'), { auth: { token: await token('dave'), batch: true } });
    await call(probe, 'join_channel', 'general');
    const frames = collectEvents(probe, 'new_messages');
    const writer = await connect(s.url, await token('erin'));
    await call(writer, 'join_channel', 'general');
    const acks = await Promise.all(
      Array.from({ length: 60 }, (_, i) => call(writer, 'send_message', { channelId: 'general', content: `b${i}`, clientMessageId: `b${i}` })),
    );
    expect(acks.every((a) => a.ok)).toBe(true);
    await waitFor(() => gotBatched.length >= 60 && gotPlain.length >= 60, 'both readers to get the burst');
    const expected = Array.from({ length: 60 }, (_, i) => i + 1);
    expect(seqs(gotBatched)).toEqual(expected);
    expect(seqs(gotPlain)).toEqual(expected);
    expect(frames.length).toBeGreaterThan(0);
  });
});

describe('SDK: typed errors', () => {
  it('rejects FORBIDDEN, INVALID_PAYLOAD and PAYLOAD_TOO_LARGE with a SwitchboardClientError at once', async () => {
    const s = await server({ MAX_MESSAGE_LENGTH: '10' });
    const c = client({ url: s.url });
    await collect(c, 'general');
    const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
    const forbidden = await errorOf(c.send('random', 'not joined'));
    const invalid = await errorOf(c.send('general', ''));
    const tooLarge = await errorOf(c.send('general', 'x'.repeat(11)));
    for (const [e, code] of [
      [forbidden, 'FORBIDDEN'],
      [invalid, 'INVALID_PAYLOAD'],
      [tooLarge, 'PAYLOAD_TOO_LARGE'],
    ] as const) {
      expect(e).toBeInstanceOf(SwitchboardClientError);
      expect((e as SwitchboardClientError).code).toBe(code);
    }
  });

  it('waits out RATE_LIMITED (retryAfterMs) and retries, up to maxRateLimitRetries', async () => {
    const s = await server({ RATE_LIMIT_MESSAGES: '2/1s' });
    const patient = client({ url: s.url, maxRateLimitRetries: 5 });
    const got = await collect(patient, 'general');
    const sent = await Promise.all([1, 2, 3, 4].map((i) => patient.send('general', `p${i}`)));
    expect(sent).toHaveLength(4);
    await waitFor(() => got.length >= 4, 'four messages');
    expect(new Set(got.map((m) => m.content))).toEqual(new Set(['p1', 'p2', 'p3', 'p4']));

    const impatient = client({ url: s.url, maxRateLimitRetries: 0 }, 'dave');
    await collect(impatient, 'general');
    const results = await Promise.allSettled([1, 2, 3].map((i) => impatient.send('general', `i${i}`)));
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as SwitchboardClientError);
    expect(rejected.length).toBeGreaterThan(0);
    for (const e of rejected) {
      expect(e).toBeInstanceOf(SwitchboardClientError);
      expect(e.code).toBe('RATE_LIMITED');
      expect(e.retryAfterMs).toBeGreaterThan(0);
    }
  });

  it('gives up after reconnectionAttempts: offline, and waiting sends reject OFFLINE', async () => {
    const port = await freePort();
    const c = client({ url: `http://127.0.0.1:${port}`, reconnectionAttempts: 2, reconnectionDelay: 50, reconnectionDelayMax: 100 });
    const e = await c.send('general', 'nobody home').then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(SwitchboardClientError);
    expect((e as SwitchboardClientError).code).toBe('OFFLINE');
    expect(c.state.status).toBe('offline');
  });

  it('never hangs: a send to an address where nobody listens rejects with TIMEOUT', async () => {
    const port = await freePort();
    const c = client({ url: `http://127.0.0.1:${port}`, sendTimeout: 1500 });
    const e = await c.send('general', 'into the void').then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(SwitchboardClientError);
    expect((e as SwitchboardClientError).code).toBe('TIMEOUT');
    expect(c.state.status).toBe('connecting');
  });
});
