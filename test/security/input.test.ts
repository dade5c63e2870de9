import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { call, closeAllClients, collect, connect, type TestSocket } from '../helpers/client.js';
import { sleep } from '../helpers/ports.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';
import { expectError, expectServes, storedMessages } from './raw.js';

// Issue 7 item 3, application half: hostile channel ids, content, access and origins. Each case:
// the contract's error code, nothing stored, nothing leaked, and the server still serves others.

let server: TestServer;
let url: string;
const CHANNEL = 'inputs';
const ORIGIN = 'https://chat.example.com';

beforeAll(async () => {
  server = await startServer({ DEFAULT_CHANNELS: `general,${CHANNEL}`, ALLOWED_ORIGIN: ORIGIN });
  url = server.url;
});
afterEach(() => closeAllClients());
afterAll(async () => {
  closeAllClients();
  await server?.close();
});

const admin = () => token('root', { admin: true });
const nothingStoredIn = async (channelId: string) => expect(await storedMessages(url, channelId)).toEqual([]);

async function member(user: string): Promise<TestSocket> {
  const s = await connect(url, await token(user));
  expect((await call(s, 'join_channel', CHANNEL)).ok).toBe(true);
  return s;
}

describe('hostile channel ids', () => {
  const ids = {
    SQL: ["general'; DROP TABLE messages; --", 'x" OR "1"="1', "general' UNION SELECT * FROM channels --", 'general;DELETE'],
    'Redis-pattern characters': ['*', 'gen*', 'gen?ral', 'gen[a-z]ral', 'channel:*', '{general}', 'general\\'],
    'path traversal': ['../general', '..%2Fgeneral', '/etc/passwd', '..\\..\\windows', 'general/../random', '%2e%2e'],
    'unicode look-alikes': ['gеneral' /* Cyrillic е */, 'ｇｅｎｅｒａｌ', 'general\u200b', 'g\u0000eneral', 'genera\u04cf', 'inputs\u0301'],
  };
  for (const [kind, list] of Object.entries(ids)) {
    test(`${kind}: INVALID_PAYLOAD on every event, nothing stored, the real channel untouched`, async () => {
      const s = await member(`ids-${kind.length}`);
      for (const id of list) {
        for (const [event, payload] of [
          ['join_channel', id],
          ['send_message', { channelId: id, content: 'x', clientMessageId: 'id-test' }],
          ['history', { channelId: id }],
          ['presence', { channelId: id }],
          ['typing', { channelId: id }],
          ['leave_channel', id],
        ] as const) {
          const ack = await call(s, event, payload);
          expect(ack.ok, `${event} ${JSON.stringify(id)}`).toBe(false);
          expectError(ack.error, 'INVALID_PAYLOAD');
          expect(ack.error.message).not.toContain(id);
        }
        const r = await fetch(`${url}/api/channels/${encodeURIComponent(id)}/messages`, { headers: { authorization: `Bearer ${await admin()}` } });
        expect([400, 404]).toContain(r.status);
        expect(JSON.stringify(await r.json())).not.toMatch(/SELECT|sqlite|at \w+ \(/);
      }
      await nothingStoredIn(CHANNEL);
      expect((await storedMessages(url, 'general')).filter((m) => m.clientMessageId === 'id-test')).toEqual([]);
      await expectServes(url);
    });
  }

  test('ids that are valid but look like traversal or wildcards (".." , "..." , "a:*" is invalid) are unknown: FORBIDDEN', async () => {
    const s = await connect(url, await token('dots'));
    for (const id of ['..', '...', '.', 'general.', ':general']) {
      const ack = await call(s, 'join_channel', id);
      expectError(ack.error, 'FORBIDDEN');
    }
  });

  test('an admin cannot create a channel with a hostile id', async () => {
    for (const id of ["x'; DROP TABLE channels; --", 'a*', '../x', 'gеneral', '']) {
      const r = await fetch(`${url}/api/channels`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await admin()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id }),
      });
      expect(r.status).toBe(400);
      expectError(((await r.json()) as { error: unknown }).error, 'INVALID_PAYLOAD');
    }
  });
});

describe('hostile content', () => {
  test('NUL characters: INVALID_PAYLOAD, nothing stored', async () => {
    const s = await member('nul');
    for (const content of ['\u0000', 'hello\u0000world', '\u0000'.repeat(100)]) {
      const ack = await call(s, 'send_message', { channelId: CHANNEL, content, clientMessageId: `nul-${content.length}` });
      expectError(ack.error, 'INVALID_PAYLOAD');
    }
    const ack = await call(s, 'send_message', { channelId: CHANNEL, content: 'ok', clientMessageId: 'nul\u0000id' });
    expectError(ack.error, 'INVALID_PAYLOAD');
    await nothingStoredIn(CHANNEL);
    await expectServes(url);
  });

  test('lone surrogates: INVALID_PAYLOAD, nothing stored', async () => {
    const s = await member('surrogates');
    for (const content of ['\ud800', 'a\udc00b', '\udbff\udbff', `${'😀'.slice(0, 1)}tail`]) {
      const ack = await call(s, 'send_message', { channelId: CHANNEL, content, clientMessageId: `s-${content.length}` });
      expectError(ack.error, 'INVALID_PAYLOAD');
    }
    await nothingStoredIn(CHANNEL);
  });

  test('content over MAX_MESSAGE_LENGTH inside the frame limit: PAYLOAD_TOO_LARGE, nothing stored', async () => {
    const s = await member('long');
    const ack = await call(s, 'send_message', { channelId: CHANNEL, content: 'x'.repeat(4001), clientMessageId: 'long' });
    expectError(ack.error, 'PAYLOAD_TOO_LARGE');
    expect(s.connected).toBe(true);
    await nothingStoredIn(CHANNEL);
  });

  test('a 10 MB string closes that connection (frame limit); REST answers 413; nothing stored', async () => {
    const s = await member('tenmb');
    const watcher = await member('watcher');
    const seen = collect(watcher, 'new_message');
    const gone = new Promise<string>((resolve) => s.once('disconnect', resolve));
    s.emit('send_message', { channelId: CHANNEL, content: 'z'.repeat(10 * 1024 * 1024), clientMessageId: 'tenmb' });
    expect(await gone).toMatch(/transport (close|error)/);
    const r = await fetch(`${url}/api/channels/${CHANNEL}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await admin()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'z'.repeat(10 * 1024 * 1024) }),
    });
    expect(r.status).toBe(413);
    expectError(((await r.json()) as { error: unknown }).error, 'PAYLOAD_TOO_LARGE');
    await nothingStoredIn(CHANNEL);
    expect(seen).toEqual([]);
    expect(watcher.connected).toBe(true);
    await expectServes(url);
  });

  test('wrong types for every field: INVALID_PAYLOAD', async () => {
    const s = await member('types');
    const bad = [null, 42, 'text', [], { channelId: CHANNEL }, { channelId: CHANNEL, content: 7, clientMessageId: 'a' },
      { channelId: CHANNEL, content: 'a', clientMessageId: 'x'.repeat(65) }, { channelId: CHANNEL, content: '   ', clientMessageId: 'blank' },
      { channelId: CHANNEL, content: { toString: 'x' }, clientMessageId: 'obj' }];
    for (const p of bad) expectError((await call(s, 'send_message', p)).error, 'INVALID_PAYLOAD');
    for (const p of [{ channelId: CHANNEL, limit: -1 }, { channelId: CHANNEL, beforeSeq: 1e300 }, { channelId: CHANNEL, afterSeq: 'NaN' }, { channelId: CHANNEL, limit: 1.5 }]) {
      expectError((await call(s, 'history', p)).error, 'INVALID_PAYLOAD');
    }
    await nothingStoredIn(CHANNEL);
  });
});

describe('access', () => {
  test('guessing private channel ids: FORBIDDEN, indistinguishable from an unknown channel', async () => {
    const secret = `vault-${Math.random().toString(36).slice(2, 8)}`;
    const r = await fetch(`${url}/api/channels`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await admin()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: secret, private: true }),
    });
    expect(r.status).toBe(201);
    const s = await connect(url, await token('guesser', { channels: ['some-other-grant'] }));
    for (const [event, payload] of [
      ['join_channel', (id: string) => id],
      ['history', (id: string) => ({ channelId: id })],
      ['presence', (id: string) => ({ channelId: id })],
      ['send_message', (id: string) => ({ channelId: id, content: 'let me in', clientMessageId: 'guess' })],
      ['typing', (id: string) => ({ channelId: id })],
    ] as const) {
      const real = await call(s, event, payload(secret));
      const unknown = await call(s, event, payload('vault-doesnotexist'));
      expectError(real.error, 'FORBIDDEN');
      // Same answer for a private channel and a channel that does not exist: existence is not revealed.
      expect(real.error).toEqual(unknown.error);
    }
    const t = await token('guesser');
    const rest = await fetch(`${url}/api/channels/${secret}/messages`, { headers: { authorization: `Bearer ${t}` } });
    const restUnknown = await fetch(`${url}/api/channels/vault-doesnotexist/messages`, { headers: { authorization: `Bearer ${t}` } });
    expect(rest.status).toBe(403);
    expect(restUnknown.status).toBe(403);
    expect(await rest.json()).toEqual(await restUnknown.json());
    await nothingStoredIn(secret);
  });

  test('sending to a channel not joined: FORBIDDEN, nothing stored, no member sees it', async () => {
    const watcher = await member('inside');
    const seen = collect(watcher, 'new_message');
    const outsider = await connect(url, await token('outsider'));
    const ack = await call(outsider, 'send_message', { channelId: CHANNEL, content: 'sneaky', clientMessageId: 'sneak' });
    expectError(ack.error, 'FORBIDDEN');
    expectError((await call(outsider, 'typing', { channelId: CHANNEL })).error, 'FORBIDDEN');
    expectError((await call(outsider, 'leave_channel', CHANNEL)).error, 'FORBIDDEN');
    // After leaving, sending is refused again.
    const left = await member('leaver');
    expect((await call(left, 'leave_channel', CHANNEL)).ok).toBe(true);
    expectError((await call(left, 'send_message', { channelId: CHANNEL, content: 'x', clientMessageId: 'after-leave' })).error, 'FORBIDDEN');
    await call(watcher, 'presence', { channelId: CHANNEL });
    await sleep(50);
    expect(seen).toEqual([]);
    await nothingStoredIn(CHANNEL);
  });

  const adminRoutes: [string, string, unknown][] = [
    ['POST', '/api/channels', { id: 'created-by-nobody' }],
    ['PUT', `/api/channels/${CHANNEL}/members/mallory`, undefined],
    ['DELETE', `/api/channels/${CHANNEL}/members/mallory`, undefined],
    ['POST', `/api/channels/${CHANNEL}/messages`, { content: 'forged', userId: 'alice' }],
  ];

  test('admin routes without a token: 401 UNAUTHENTICATED; nothing created or stored', async () => {
    for (const [method, path, body] of adminRoutes) {
      for (const auth of [undefined, 'Bearer', 'Bearer not.a.jwt', 'Basic cm9vdDpyb290']) {
        const r = await fetch(`${url}${path}`, {
          method,
          headers: { ...(auth ? { authorization: auth } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        expect(r.status, `${method} ${path} ${auth}`).toBe(401);
        expectError(((await r.json()) as { error: unknown }).error, 'UNAUTHENTICATED');
      }
    }
    await nothingStoredIn(CHANNEL);
    // The channel was not created: an admin can create it now.
    const r = await fetch(`${url}/api/channels`, { method: 'POST', headers: { authorization: `Bearer ${await admin()}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'created-by-nobody' }) });
    expect(r.status).toBe(201);
  });

  test('admin routes with a non-admin token: 403 FORBIDDEN; nothing created or stored', async () => {
    const t = await token('mallory', { name: 'admin', channels: [CHANNEL] });
    // A role claim that is not exactly "admin" grants nothing.
    const { SignJWT } = await import('jose');
    const { createSecretKey } = await import('node:crypto');
    const { TEST_SECRET } = await import('../helpers/tokens.js');
    const sneaky = await new SignJWT({ role: ['admin'], admin: true, isAdmin: true })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .setExpirationTime('1h')
      .sign(createSecretKey(Buffer.from(TEST_SECRET)));
    for (const tk of [t, sneaky]) {
      for (const [method, path, body] of adminRoutes) {
        const r = await fetch(`${url}${path}`, {
          method,
          headers: { authorization: `Bearer ${tk}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body).replace('created-by-nobody', 'created-by-mallory') } : {}),
        });
        expect(r.status, `${method} ${path}`).toBe(403);
        expectError(((await r.json()) as { error: unknown }).error, 'FORBIDDEN');
      }
    }
    await nothingStoredIn(CHANNEL);
    const r = await fetch(`${url}/api/channels`, { method: 'POST', headers: { authorization: `Bearer ${await admin()}`, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'created-by-mallory' }) });
    expect(r.status).toBe(201);
    await expectServes(url);
  });
});

describe('CORS and Origin', () => {
  const handshake = (origin?: string) => fetch(`${url}/socket.io/?EIO=4&transport=polling`, { headers: origin ? { origin } : {} });

  test('a polling handshake from a foreign origin is refused, with no Access-Control-Allow-Origin', async () => {
    for (const origin of ['https://evil.example', 'https://chat.example.com.evil.example', 'null', 'http://chat.example.com', 'https://chat.example.com:8443']) {
      const r = await handshake(origin);
      expect(r.status, origin).toBe(403);
      expect(r.headers.get('access-control-allow-origin')).toBeNull();
      expect(await r.text()).not.toContain('"sid"');
    }
    // The preflight gives a foreign origin nothing either.
    const pre = await fetch(`${url}/socket.io/?EIO=4&transport=polling`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('a WebSocket upgrade from a foreign origin is refused; the allowed origin is served', async () => {
    const err = await connect(url, await token('browser'), { extraHeaders: { origin: 'https://evil.example' } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    const ok = await handshake(ORIGIN);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const s = await connect(url, await token('browser'), { extraHeaders: { origin: ORIGIN } });
    expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
  });
});
