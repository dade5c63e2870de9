import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from 'switchboard-client/protocol';
import { adminToken, createChannel, http, publishMany, unique, type JsonResponse } from '../helpers/api.js';
import { call, closeAllClients, connect, next } from '../helpers/client.js';
import { createDatabase, createProxiedDatabase, type ProxiedDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startServer, type TestServer } from '../helpers/server.js';
import type { TcpProxy } from '../helpers/tcp-proxy.js';
import { token } from '../helpers/tokens.js';

/** The contract's JSON error: {error: {code, message}} and nothing else. */
function expectJsonError(r: JsonResponse, status: number, code: string): void {
  expect({ status: r.status, body: r.body }).toMatchObject({ status, body: { error: { code } } });
  expect(r.headers.get('content-type')).toMatch(/^application\/json/);
  expect(Object.keys(r.body)).toEqual(['error']);
  expect(typeof r.body.error.message).toBe('string');
  expect(r.body.error.message.length).toBeGreaterThan(0);
}

describe('HTTP on one server', () => {
  let server: TestServer;
  let url: string;
  let admin: string;
  beforeAll(async () => {
    server = await startServer({ INSTANCE_ID: 'http-test-1' });
    url = server.url;
    admin = await adminToken();
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await server?.close();
  });

  describe('health and metrics', () => {
    it('GET /healthz: 200 {status: "ok", instanceId}', async () => {
      const r = await http(url, 'GET', '/healthz');
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ status: 'ok', instanceId: 'http-test-1' });
    });

    it('GET /readyz: 200 while the store answers and the instance is not draining', async () => {
      const r = await http(url, 'GET', '/readyz');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ status: 'ready', checks: { store: 'up' } });
      expect(r.body.reasons).toBeUndefined();
    });

    it('GET /metrics: Prometheus text with the switchboard_ metrics and the process defaults', async () => {
      const s = await connect(url, await token('metrics-user'));
      await call(s, 'join_channel', 'general');
      await call(s, 'send_message', { channelId: 'general', content: 'counted', clientMessageId: unique('m') });
      const res = await fetch(`${url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      for (const name of [
        'switchboard_connections',
        'switchboard_connections_total',
        'switchboard_joins_total',
        'switchboard_messages_received_total',
        'switchboard_messages_stored_total',
        'switchboard_messages_delivered_total',
        'switchboard_ack_duration_seconds_bucket',
        'switchboard_store_write_duration_seconds_bucket',
        'switchboard_build_info',
        'process_cpu_user_seconds_total',
        'nodejs_eventloop_lag_seconds',
      ]) {
        expect(text).toMatch(new RegExp(`^# TYPE ${name.replace(/_bucket$/, '')} `, 'm'));
      }
      const stored = /^switchboard_messages_stored_total (\d+)$/m.exec(text);
      expect(Number(stored?.[1])).toBeGreaterThanOrEqual(1);
      expect(text).toMatch(/^switchboard_connections [1-9]/m);
      // No series carries its own `instance` label (it would clash with Prometheus's target label);
      // the instance id is on build_info, with the version.
      expect(text).not.toMatch(/\binstance="/);
      expect(text).toMatch(/^switchboard_build_info\{version="\d+\.\d+\.\d+",nodejs_version="v\d+[^"]*",instance_id="http-test-1"\} 1$/m);
    });
  });

  describe('POST /api/channels', () => {
    it('201 {channel} for an admin; 409 when the id is taken', async () => {
      const id = unique('made');
      const r = await http(url, 'POST', '/api/channels', { token: admin, body: { id, name: 'Made here', private: true } });
      expect(r.status).toBe(201);
      expect(r.body).toEqual({ channel: { id, name: 'Made here', isPrivate: true, lastSeq: 0, createdAt: expect.any(String) } });
      expect(new Date(r.body.channel.createdAt).toISOString()).toBe(r.body.channel.createdAt);
      const pub = await http(url, 'POST', '/api/channels', { token: admin, body: { id: unique('pub') } });
      expect(pub.status).toBe(201);
      expect(pub.body.channel).toMatchObject({ isPrivate: false });
      expectJsonError(await http(url, 'POST', '/api/channels', { token: admin, body: { id } }), 409, 'CONFLICT');
      expectJsonError(await http(url, 'POST', '/api/channels', { token: admin, body: { id: 'general' } }), 409, 'CONFLICT');
    });

    it('400 for a bad body', async () => {
      for (const body of [{}, { id: '' }, { id: 'has space' }, { id: 'x'.repeat(65) }, { id: 5 }, { id: unique('ok'), private: 'yes' }, { id: unique('ok'), extra: 1 }, [], 'general', null]) {
        expectJsonError(await http(url, 'POST', '/api/channels', { token: admin, body }), 400, 'INVALID_PAYLOAD');
      }
    });

    it('401 without a valid token, 403 for a non-admin', async () => {
      expectJsonError(await http(url, 'POST', '/api/channels', { body: { id: unique('x') } }), 401, 'UNAUTHENTICATED');
      expectJsonError(await http(url, 'POST', '/api/channels', { token: await token('a', { ttl: -60 }), body: { id: unique('x') } }), 401, 'UNAUTHENTICATED');
      expectJsonError(await http(url, 'POST', '/api/channels', { token: 'garbage', body: { id: unique('x') } }), 401, 'UNAUTHENTICATED');
      expectJsonError(await http(url, 'POST', '/api/channels', { token: await token('a', { secret: 'x'.repeat(40), admin: true }), body: { id: unique('x') } }), 401, 'UNAUTHENTICATED');
      expectJsonError(await http(url, 'POST', '/api/channels', { token: await token('plain-user'), body: { id: unique('x') } }), 403, 'FORBIDDEN');
    });
  });

  describe('members', () => {
    it('PUT and DELETE answer 204, idempotently; 404 for an unknown channel; 401/403 without admin', async () => {
      const ch = unique('m');
      await createChannel(url, ch, { private: true });
      for (let i = 0; i < 2; i++) {
        const put = await http(url, 'PUT', `/api/channels/${ch}/members/bob`, { token: admin });
        expect(put.status).toBe(204);
        expect(put.body).toBeUndefined();
      }
      for (let i = 0; i < 2; i++) expect((await http(url, 'DELETE', `/api/channels/${ch}/members/bob`, { token: admin })).status).toBe(204);
      expectJsonError(await http(url, 'PUT', `/api/channels/${unique('nope')}/members/bob`, { token: admin }), 404, 'NOT_FOUND');
      expectJsonError(await http(url, 'DELETE', `/api/channels/${unique('nope')}/members/bob`, { token: admin }), 404, 'NOT_FOUND');
      expectJsonError(await http(url, 'PUT', `/api/channels/${ch}/members/bob`), 401, 'UNAUTHENTICATED');
      expectJsonError(await http(url, 'PUT', `/api/channels/${ch}/members/bob`, { token: await token('bob') }), 403, 'FORBIDDEN');
      expectJsonError(await http(url, 'DELETE', `/api/channels/${ch}/members/bob`, { token: await token('bob') }), 403, 'FORBIDDEN');
      expectJsonError(await http(url, 'PUT', `/api/channels/bad%20id/members/bob`, { token: admin }), 400, 'INVALID_PAYLOAD');
    });
  });

  describe('GET /api/channels/:id/messages', () => {
    let ch: string;
    let priv: string;
    beforeAll(async () => {
      ch = unique('read');
      priv = unique('read-priv');
      await createChannel(url, ch);
      await createChannel(url, priv, { private: true });
      await publishMany(url, ch, 230);
      await publishMany(url, priv, 3);
    });
    const seqs = (r: JsonResponse) => (r.body.messages as Message[]).map((m) => m.seq);
    const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

    it('200 {messages, hasMore}, paged as history', async () => {
      const reader = await token('reader');
      const def = await http(url, 'GET', `/api/channels/${ch}/messages`, { token: reader });
      expect(def.status).toBe(200);
      expect(Object.keys(def.body).sort()).toEqual(['hasMore', 'messages']);
      expect(seqs(def)).toEqual(range(181, 230));
      expect(def.body.hasMore).toBe(true);
      const before = await http(url, 'GET', `/api/channels/${ch}/messages?beforeSeq=11&limit=20`, { token: reader });
      expect(seqs(before)).toEqual(range(1, 10));
      expect(before.body.hasMore).toBe(false);
      const after = await http(url, 'GET', `/api/channels/${ch}/messages?afterSeq=5&limit=10`, { token: reader });
      expect(seqs(after)).toEqual(range(6, 15));
      expect(after.body.hasMore).toBe(true);
      const clamped = await http(url, 'GET', `/api/channels/${ch}/messages?limit=5000`, { token: reader });
      expect(seqs(clamped)).toEqual(range(31, 230));
      expect(clamped.body.hasMore).toBe(true);
      const end = await http(url, 'GET', `/api/channels/${ch}/messages?afterSeq=220`, { token: reader });
      expect(seqs(end)).toEqual(range(221, 230));
      expect(end.body.hasMore).toBe(false);
    });

    it('400 for bad query values', async () => {
      const reader = await token('reader');
      for (const q of ['limit=0', 'limit=abc', 'afterSeq=-1', 'beforeSeq=1.5', 'afterSeq=1&beforeSeq=5', 'other=1']) {
        expectJsonError(await http(url, 'GET', `/api/channels/${ch}/messages?${q}`, { token: reader }), 400, 'INVALID_PAYLOAD');
      }
    });

    it('a private channel: 403 for a non-member, 200 for a member, the token claim, and an admin', async () => {
      expectJsonError(await http(url, 'GET', `/api/channels/${priv}/messages`, { token: await token('outsider') }), 403, 'FORBIDDEN');
      await http(url, 'PUT', `/api/channels/${priv}/members/insider`, { token: admin });
      const member = await http(url, 'GET', `/api/channels/${priv}/messages`, { token: await token('insider') });
      expect(member.status).toBe(200);
      expect(seqs(member)).toEqual([1, 2, 3]);
      expect((await http(url, 'GET', `/api/channels/${priv}/messages`, { token: await token('claimer', { channels: [priv] }) })).status).toBe(200);
      expect((await http(url, 'GET', `/api/channels/${priv}/messages`, { token: admin })).status).toBe(200);
      // An unknown channel answers like a private one: existence is not revealed.
      expectJsonError(await http(url, 'GET', `/api/channels/${unique('nope')}/messages`, { token: await token('outsider') }), 403, 'FORBIDDEN');
      expectJsonError(await http(url, 'GET', `/api/channels/${ch}/messages`), 401, 'UNAUTHENTICATED');
    });
  });

  describe('POST /api/channels/:id/messages', () => {
    it('201 {message}, as a user or as the server, reaching the socket members', async () => {
      const ch = unique('pub');
      await createChannel(url, ch);
      const member = await connect(url, await token(unique('listener')));
      await call(member, 'join_channel', ch);
      const got = next(member, 'new_message');
      const r = await http(url, 'POST', `/api/channels/${ch}/messages`, { token: admin, body: { content: 'from the server' } });
      expect(r.status).toBe(201);
      expect(Object.keys(r.body)).toEqual(['message']);
      expect(r.body.message).toMatchObject({ seq: 1, channelId: ch, userId: 'system', content: 'from the server' });
      expect(typeof r.body.message.clientMessageId).toBe('string');
      expect(await got).toEqual(r.body.message);
      const as = await http(url, 'POST', `/api/channels/${ch}/messages`, { token: admin, body: { content: 'as carol', userId: 'carol', clientMessageId: 'c-1' } });
      expect(as.status).toBe(201);
      expect(as.body.message).toMatchObject({ seq: 2, userId: 'carol', clientMessageId: 'c-1' });
      // The same clientMessageId again stores nothing new.
      const again = await http(url, 'POST', `/api/channels/${ch}/messages`, { token: admin, body: { content: 'as carol', userId: 'carol', clientMessageId: 'c-1' } });
      expect(again.status).toBe(201);
      expect(again.body.message).toEqual(as.body.message);
      const h = await call(member, 'history', { channelId: ch });
      expect(h.messages.map((m: Message) => m.seq)).toEqual([1, 2]);
    });

    it('errors: 404 unknown channel, 400 bad body, 413 over-long content, 401, 403', async () => {
      const ch = unique('pub-err');
      await createChannel(url, ch);
      expectJsonError(await http(url, 'POST', `/api/channels/${unique('nope')}/messages`, { token: admin, body: { content: 'x' } }), 404, 'NOT_FOUND');
      for (const body of [{}, { content: '' }, { content: 5 }, { content: 'x', extra: 1 }, { content: 'x', userId: '' }, { content: 'x', clientMessageId: 'y'.repeat(65) }]) {
        expectJsonError(await http(url, 'POST', `/api/channels/${ch}/messages`, { token: admin, body }), 400, 'INVALID_PAYLOAD');
      }
      // HTTP_STATUS maps PAYLOAD_TOO_LARGE to 413.
      expectJsonError(await http(url, 'POST', `/api/channels/${ch}/messages`, { token: admin, body: { content: 'x'.repeat(server.app.config.maxMessageLength + 1) } }), 413, 'PAYLOAD_TOO_LARGE');
      expectJsonError(await http(url, 'POST', `/api/channels/${ch}/messages`, { body: { content: 'x' } }), 401, 'UNAUTHENTICATED');
      expectJsonError(await http(url, 'POST', `/api/channels/${ch}/messages`, { token: await token('nobody'), body: { content: 'x' } }), 403, 'FORBIDDEN');
    });
  });

  describe('JSON errors everywhere', () => {
    it('an unknown route is 404 NOT_FOUND', async () => {
      expectJsonError(await http(url, 'GET', '/no/such/route'), 404, 'NOT_FOUND');
      expectJsonError(await http(url, 'DELETE', '/api/channels'), 404, 'NOT_FOUND');
    });

    it('malformed JSON is 400 INVALID_PAYLOAD', async () => {
      for (const path of ['/api/channels', `/api/channels/general/messages`]) {
        expectJsonError(await http(url, 'POST', path, { token: admin, raw: '{"id": ' }), 400, 'INVALID_PAYLOAD');
        expectJsonError(await http(url, 'POST', path, { token: admin, raw: '{"__proto__": {"x": 1}, "id": "proto-body"}' }), 400, 'INVALID_PAYLOAD');
      }
      expectJsonError(await http(url, 'POST', '/api/channels', { token: admin, raw: 'id=x', headers: { 'content-type': 'text/plain' } }), 400, 'INVALID_PAYLOAD');
    });

    it('random bodies and queries on every route: never a 5xx, errors always in the JSON shape', async () => {
      const key = fc.oneof(fc.constantFrom('id', 'name', 'private', 'content', 'userId', 'clientMessageId', 'channels', 'admin', '__proto__', 'constructor'), fc.string({ maxLength: 8 }));
      const body = fc.oneof(fc.anything({ key, maxDepth: 2 }), fc.dictionary(key, fc.anything({ key, maxDepth: 1 })));
      const path = fc.constantFrom('/api/channels', '/api/channels/general/messages', '/dev/token', '/api/channels/general/members/bob', '/api/channels/__proto__/messages', '/api/channels/constructor/members/__proto__');
      const method = fc.constantFrom('POST', 'PUT', 'DELETE', 'GET');
      const query = fc.oneof(
        fc.constant(''),
        fc.string({ maxLength: 20 }).map((q) => `?${encodeURIComponent(q)}=${encodeURIComponent(q)}`),
        fc.constantFrom('?limit=1e3', '?afterSeq=0x10', '?beforeSeq=Infinity', '?limit=NaN', '?limit=&afterSeq=', '?limit=1&limit=2', '?__proto__[x]=1', '?constructor=1'),
      );
      await fc.assert(
        fc.asyncProperty(method, path, query, body, async (m, p, q, b) => {
          const r = await http(url, m, m === 'GET' ? p + q : p, { token: admin, ...(m === 'GET' ? {} : { raw: JSON.stringify(b) ?? 'null' }) });
          expect(r.status).toBeLessThan(500);
          if (r.status >= 400) {
            expect(['INVALID_PAYLOAD', 'PAYLOAD_TOO_LARGE', 'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT']).toContain(r.body?.error?.code);
            expectJsonError(r, r.status, r.body.error.code);
          }
        }),
        { numRuns: 300 },
      );
      expect(({} as Record<string, unknown>)['x']).toBeUndefined();
    });

    it('a body above MAX_FRAME_BYTES is refused with PAYLOAD_TOO_LARGE', async () => {
      const r = await http(url, 'POST', '/api/channels/general/messages', { token: admin, body: { content: 'x'.repeat(server.app.config.maxFrameBytes + 10) } });
      expectJsonError(r, 413, 'PAYLOAD_TOO_LARGE');
    });
  });
});

describe('HTTP in production', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ NODE_ENV: 'production' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('/dev/token is 404, and the health routes still answer', async () => {
    expectJsonError(await http(server.url, 'POST', '/dev/token', { body: { userId: 'alice' } }), 404, 'NOT_FOUND');
    expect((await http(server.url, 'GET', '/healthz')).status).toBe(200);
    expect((await http(server.url, 'GET', '/readyz')).status).toBe(200);
  });
});

describe('/readyz when not ready', () => {
  let db: ProxiedDatabase;
  let proxy: TcpProxy;
  let server: TestServer;
  let draining: TestServer;
  beforeAll(async () => {
    db = await createProxiedDatabase('http_ready');
    proxy = db.proxy;
    server = await startServer({ DATABASE_URL: db.proxiedUrl });
    draining = await startServer({ SHUTDOWN_NOTICE_MS: '1000', SHUTDOWN_TIMEOUT_MS: '5000' });
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await proxy?.restore().catch(() => undefined);
    await server?.close();
    await draining?.close();
    await db?.drop();
  });

  it('503 with the reason while the store is down; REST reads answer 503 UNAVAILABLE; 200 again once it is back', async () => {
    expect((await http(server.url, 'GET', '/readyz')).status).toBe(200);
    await proxy.cut();
    const r = await http(server.url, 'GET', '/readyz');
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ status: 'not_ready', checks: { store: 'down' } });
    expect(r.body.reasons).toEqual(expect.arrayContaining([expect.stringMatching(/store/)]));
    expect((await http(server.url, 'GET', '/healthz')).status).toBe(200);
    const read = await http(server.url, 'GET', '/api/channels/general/messages', { token: await adminToken() });
    expectJsonError(read, 503, 'UNAVAILABLE');
    expect(JSON.stringify(read.body)).not.toMatch(/ECONN|127\.0\.0\.1|SELECT/);
    await proxy.restore();
    expect((await http(server.url, 'GET', '/readyz')).status).toBe(200);
  });

  it('503 with the reason while draining; /healthz stays 200; new sockets are refused; clients get server_shutdown', async () => {
    const client = await connect(draining.url, await token('stays'));
    const notice = next(client, 'server_shutdown');
    const done = draining.app.drain();
    try {
      const r = await http(draining.url, 'GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.body.status).toBe('not_ready');
      expect(r.body.reasons).toEqual(expect.arrayContaining([expect.stringMatching(/draining/)]));
      expect((await http(draining.url, 'GET', '/healthz')).status).toBe(200);
      const handshake = await fetch(`${draining.url}/socket.io/?EIO=4&transport=polling`);
      expect(handshake.status).toBe(503);
      const e = await notice;
      expect(typeof e.message).toBe('string');
      expect(e.reconnectDelay).toBeGreaterThanOrEqual(0);
      expect(e.reconnectDelay).toBeLessThanOrEqual(1000);
    } finally {
      await done;
    }
  });
});
