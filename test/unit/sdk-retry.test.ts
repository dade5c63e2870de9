// The SDK's one retry rule (isRetryable + retryDelay) in each place it applies: joins, gap fills,
// sends and requests, against a scripted Socket.IO server that answers each attempt as told.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, SwitchboardClientError, type CreateClientOptions, type SwitchboardClient } from 'switchboard-client';
import type { ErrorCode, Message } from 'switchboard-client/protocol';
import { retryDelay } from '../../packages/client/src/retry.js';
import { waitFor } from '../helpers/ports.js';

type Answer = { ok: true; [key: string]: unknown } | { ok: false; error: { code: ErrorCode; message: string; retryAfterMs?: number } };
/** Answers the `attempt`-th call (1-based) of an event; undefined: no answer at all. */
type Script = Record<string, (payload: any, attempt: number, socket: Socket) => Answer | undefined>;

const fail = (code: ErrorCode, retryAfterMs?: number): Answer => ({ ok: false, error: { code, message: code, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) } });
const message = (seq: number, channelId = 'general'): Message => ({
  id: `m${seq}`,
  seq,
  channelId,
  userId: 'someone',
  content: `#${seq}`,
  timestamp: new Date(0).toISOString(),
  clientMessageId: `c${seq}`,
});

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A Socket.IO server that answers per `script` and records every payload, keyed `event:channelId`. */
async function scripted(script: Script): Promise<{ url: string; calls: Map<string, unknown[]> }> {
  const http = createServer();
  const io = new Server(http);
  const calls = new Map<string, unknown[]>();
  io.on('connection', (socket) => {
    for (const [event, answer] of Object.entries(script)) {
      socket.on(event, (payload: unknown, ack?: (a: Answer) => void) => {
        const key = `${event}:${typeof payload === 'string' ? payload : (payload as { channelId?: string } | undefined)?.channelId}`;
        const seen = calls.get(key) ?? [];
        seen.push(payload);
        calls.set(key, seen);
        const a = answer(payload, seen.length, socket);
        if (a) ack?.(a);
      });
    }
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => io.close(() => resolve())));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, calls };
}

function client(url: string, over: Partial<CreateClientOptions> = {}): SwitchboardClient {
  const c = createClient({ url, getToken: () => 'token', transports: ['websocket'], reconnectionDelay: 10, reconnectionDelayMax: 20, gapFillDelay: 10, onError: () => undefined, ...over });
  closers.push(() => c.close());
  return c;
}

const count = (calls: Map<string, unknown[]>, key: string) => calls.get(key)?.length ?? 0;
const rejection = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as SwitchboardClientError);
const joinOk = (channelId: string, lastSeq = 0): Answer => ({ ok: true, channelId, lastSeq });

describe('retryDelay', () => {
  const o = { reconnectionDelay: 1000, reconnectionDelayMax: 10_000, randomizationFactor: 0.5 };

  it('waits out RATE_LIMITED for its retryAfterMs, plus at most 100 ms', () => {
    for (let i = 0; i < 50; i++) {
      const wait = retryDelay(new SwitchboardClientError('RATE_LIMITED', 'slow down', { retryAfterMs: 7000 }), 0, o);
      expect(wait).toBeGreaterThanOrEqual(7000);
      expect(wait).toBeLessThanOrEqual(7100);
    }
  });

  it('backs off for everything else, and for lost answers', () => {
    for (let i = 0; i < 50; i++) {
      for (const error of [new SwitchboardClientError('UNAVAILABLE', 'down'), new SwitchboardClientError('RATE_LIMITED', 'no hint'), undefined]) {
        const wait = retryDelay(error, 2, o); // the third failure: 4000 ms ± 50 %
        expect(wait).toBeGreaterThanOrEqual(2000);
        expect(wait).toBeLessThanOrEqual(6000);
      }
    }
  });
});

describe('SDK retries: joins', () => {
  it('retries a join answered UNAVAILABLE, then RATE_LIMITED, until it succeeds', async () => {
    const { url, calls } = await scripted({
      join_channel: (channelId: string, n) => (n === 1 ? fail('UNAVAILABLE') : n === 2 ? fail('RATE_LIMITED', 20) : joinOk(channelId)),
    });
    let joined = false;
    client(url).subscribe('general', { onJoin: () => (joined = true) });
    await waitFor(() => joined, 'the third join to succeed');
    expect(count(calls, 'join_channel:general')).toBe(3);
  });

  it('ends the subscription at FORBIDDEN and fails its waiting sends with it', async () => {
    const { url, calls } = await scripted({ join_channel: () => fail('FORBIDDEN'), send_message: () => fail('INTERNAL') });
    const c = client(url);
    const errors: SwitchboardClientError[] = [];
    c.subscribe('secret', { onError: (e) => errors.push(e) });
    const send = rejection(c.send('secret', 'hello?'));
    await waitFor(() => errors.length > 0, 'the refusal');
    expect(errors.map((e) => e.code)).toEqual(['FORBIDDEN']);
    expect((await send)?.code).toBe('FORBIDDEN');
    expect(count(calls, 'send_message:secret')).toBe(0);
  });
});

describe('SDK retries: gap fill', () => {
  it('retries a history page answered RATE_LIMITED and closes the gap', async () => {
    const { url, calls } = await scripted({
      join_channel: (channelId: string, _n, socket) => {
        // After the answer, seq 2 arrives live: seq 1's broadcast was lost.
        setTimeout(() => socket.emit('new_message', message(2)), 5);
        return joinOk(channelId);
      },
      history: (_q, n) => (n === 1 ? fail('RATE_LIMITED', 20) : { ok: true, messages: [message(1), message(2)], hasMore: false }),
    });
    const got: number[] = [];
    client(url).subscribe('general', { onMessage: (m) => got.push(m.seq) });
    await waitFor(() => got.length === 2, 'seq 1 filled from history, then seq 2');
    expect(got).toEqual([1, 2]);
    expect(count(calls, 'history:general')).toBe(2);
  });
});

describe('SDK retries: sends', () => {
  it('sends again with the same clientMessageId after RATE_LIMITED, UNAVAILABLE, INTERNAL and a lost connection', async () => {
    const { url, calls } = await scripted({
      send_message: (p: { channelId: string; content: string; clientMessageId: string }, n, socket) => {
        if (n === 4) {
          socket.disconnect(true); // no answer: the next connection sends it again
          return undefined;
        }
        const errors = [fail('RATE_LIMITED', 20), fail('UNAVAILABLE'), fail('INTERNAL')];
        return errors[n - 1] ?? { ok: true, message: { ...message(1), content: p.content, clientMessageId: p.clientMessageId } };
      },
    });
    const stored = await client(url).send('general', 'persistent');
    const attempts = (calls.get('send_message:general') ?? []) as { clientMessageId: string }[];
    expect(attempts).toHaveLength(5);
    expect(new Set(attempts.map((a) => a.clientMessageId))).toEqual(new Set([stored.clientMessageId]));
  });

  it('rejects at once on FORBIDDEN, and on RATE_LIMITED once maxRateLimitRetries are used up', async () => {
    const { url, calls } = await scripted({ send_message: (p: { channelId: string }) => (p.channelId === 'closed' ? fail('FORBIDDEN') : fail('RATE_LIMITED', 10)) });
    const c = client(url, { maxRateLimitRetries: 2 });
    const [forbidden, limited] = await Promise.all([rejection(c.send('closed', 'no')), rejection(c.send('busy', 'later'))]);
    expect([forbidden?.code, limited?.code]).toEqual(['FORBIDDEN', 'RATE_LIMITED']);
    expect(limited?.retryAfterMs).toBe(10);
    expect(count(calls, 'send_message:closed')).toBe(1);
    expect(count(calls, 'send_message:busy')).toBe(3);
  });
});

describe('SDK retries: requests', () => {
  it('retries history and presence after RATE_LIMITED and UNAVAILABLE', async () => {
    const { url, calls } = await scripted({
      presence: (_p, n) => (n === 1 ? fail('RATE_LIMITED', 20) : { ok: true, users: [{ userId: 'alice', connections: 1 }] }),
      history: (_q, n) => (n === 1 ? fail('UNAVAILABLE') : { ok: true, messages: [message(1)], hasMore: false }),
    });
    const c = client(url);
    const [users, page] = await Promise.all([c.presence('general'), c.history({ channelId: 'general' })]);
    expect(users).toEqual([{ userId: 'alice', connections: 1 }]);
    expect(page.messages.map((m) => m.seq)).toEqual([1]);
    expect([count(calls, 'presence:general'), count(calls, 'history:general')]).toEqual([2, 2]);
  });

  it('rejects with the server error when it is not retryable, or when its wait would outlast requestTimeout', async () => {
    const { url, calls } = await scripted({
      history: (q: { channelId: string }) => (q.channelId === 'closed' ? fail('FORBIDDEN') : fail('RATE_LIMITED', 60_000)),
    });
    const c = client(url, { requestTimeout: 5000 });
    const [forbidden, limited] = await Promise.all([rejection(c.history({ channelId: 'closed' })), rejection(c.history({ channelId: 'busy' }))]);
    expect([forbidden?.code, limited?.code]).toEqual(['FORBIDDEN', 'RATE_LIMITED']);
    expect(limited?.retryAfterMs).toBe(60_000);
    expect([count(calls, 'history:closed'), count(calls, 'history:busy')]).toEqual([1, 1]);
  });
});
