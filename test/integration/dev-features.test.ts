/**
 * Development features only where they cannot hurt (issue 13, item 3): `/dev/token` and the demo page
 * with its sign-in exist only on the generated development secret, never with an operator's JWT
 * configuration, in any NODE_ENV; a NODE_ENV other than production/development/test warns; the
 * test-only crash hook arms only with NODE_ENV=test.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChannel, http, unique, type JsonResponse } from '../helpers/api.js';
import { call, connect } from '../helpers/client.js';
import { startInstance, type Instance } from '../helpers/instance.js';
import { startServer, useServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';

/** The generated development secret: startServer's JWT_SECRET unset (an empty value counts as unset). */
const ON_DEV_SECRET = { JWT_SECRET: '' };

function expectJsonError(r: JsonResponse, status: number, code: string): void {
  expect({ status: r.status, body: r.body }).toMatchObject({ status, body: { error: { code } } });
  expect(Object.keys(r.body)).toEqual(['error']);
}

const devToken = (url: string, body: unknown) => http(url, 'POST', '/dev/token', { body });
const demoStatus = async (url: string) => (await fetch(`${url}/`)).status;

describe('on the generated development secret', () => {
  const server = useServer(ON_DEV_SECRET);

  it('POST /dev/token: 200 {token} that connects as that user, with channels and the admin role', async () => {
    const { url } = server;
    const a = await devToken(url, { userId: 'dev-admin', admin: true });
    expect(a.status).toBe(200);
    expect(Object.keys(a.body)).toEqual(['token']);
    const priv = unique('dev-priv');
    expect((await http(url, 'POST', '/api/channels', { token: a.body.token, body: { id: priv, private: true } })).status).toBe(201);
    const r = await devToken(url, { userId: 'dev-alice', channels: [priv] });
    const s = await connect(url, r.body.token);
    expect((await call(s, 'join_channel', priv)).ok).toBe(true);
  });

  it('POST /dev/token: 400 INVALID_PAYLOAD for a bad or malformed body', async () => {
    for (const body of [{}, { userId: '' }, { userId: 5 }, { userId: 'a', channels: 'general' }, { userId: 'a', admin: 'yes' }, { userId: 'a', extra: 1 }]) {
      expectJsonError(await devToken(server.url, body), 400, 'INVALID_PAYLOAD');
    }
    expectJsonError(await http(server.url, 'POST', '/dev/token', { raw: '{"userId": ' }), 400, 'INVALID_PAYLOAD');
  });

  it('serves the demo page', async () => {
    expect(await demoStatus(server.url)).toBe(200);
  });
});

describe.each([
  ['unset', {}],
  ['development', { NODE_ENV: 'development' }],
  ['staging', { NODE_ENV: 'staging' }],
  ['test', { NODE_ENV: 'test' }],
  ['production', { NODE_ENV: 'production' }],
])("with the operator's JWT_SECRET, NODE_ENV %s", (_mode, env) => {
  let server: TestServer;
  beforeAll(async () => {
    // startServer signs with the operator-style TEST_SECRET; DEMO asked for explicitly.
    server = await startServer({ ...env, DEMO: 'true' });
  });
  afterAll(() => server?.close());

  it('has no /dev/token and no demo page; the API and the probes still answer', async () => {
    expectJsonError(await devToken(server.url, { userId: 'mallory', admin: true }), 404, 'NOT_FOUND');
    expect(await demoStatus(server.url)).toBe(404);
    expect((await http(server.url, 'GET', '/healthz')).status).toBe(200);
    expect((await http(server.url, 'GET', '/api/channels', { token: await token('op-user') })).status).toBe(200);
  });
});

describe('a NODE_ENV other than production, development or test', () => {
  it('logs a warning at start-up that names what is enabled', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) });
    const server = await startServer({ NODE_ENV: 'staging', LOG_LEVEL: 'warn' }, { logger: pino({ level: 'warn' }, sink) });
    await server.close();
    const warning = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.msg.includes('NODE_ENV=staging'));
    expect(warning?.level).toBe(40);
    expect(warning?.msg).toContain('/dev/token: off, demo page: off');
  });
});

describe('the test-only crash hook (built CLI)', () => {
  const instances: Instance[] = [];
  afterAll(async () => {
    await Promise.all(instances.map((i) => i.kill()));
  });

  /** An instance with the hook set to fire at the first stored message, and a member's send to it. */
  async function sendWithHook(env: Record<string, string>): Promise<{ instance: Instance; ack: Promise<unknown> }> {
    const instance = await startInstance({ env: { SWITCHBOARD_FAULT_CRASH_AFTER_STORE: 'nth:1', ...env } });
    instances.push(instance);
    const ch = unique('hook');
    await createChannel(instance.url, ch);
    const s = await connect(instance.url, await token('hook-user'), { reconnection: false });
    await call(s, 'join_channel', ch);
    return { instance, ack: call(s, 'send_message', { channelId: ch, content: 'x', clientMessageId: 'h1' }) };
  }

  it.each([['unset', {}], ['staging', { NODE_ENV: 'staging' }], ['development', { NODE_ENV: 'development' }]])(
    'is ignored with NODE_ENV %s: the send is stored and acknowledged, the process lives',
    async (_mode, env) => {
      const { instance, ack } = await sendWithHook(env);
      expect(await ack).toMatchObject({ ok: true, message: { seq: 1 } });
      expect((await http(instance.url, 'GET', '/healthz')).status).toBe(200);
      expect(instance.output()).toContain('the test-only fault hook arms only with NODE_ENV=test');
    },
  );

  it('fires with NODE_ENV=test: the process exits with code 86 after storing', async () => {
    const { instance, ack } = await sendWithHook({ NODE_ENV: 'test' });
    void ack.catch(() => undefined);
    expect(await instance.exited).toBe(86);
  });
});
