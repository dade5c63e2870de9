import { afterAll, describe, expect, test } from 'vitest';
import { call, closeAllClients, connect, next } from '../helpers/client.js';
import { startInstance, type Instance } from '../helpers/instance.js';
import { token } from '../helpers/tokens.js';
import { rawTcp, storedMessages, upgradeRequest, useServers } from './raw.js';

// Issue 13 item 2: "new session" is decided as engine.io decides it, so no spelling of the URL opens
// a session past the handshake limit or the drain.

const serve = useServers();

/** Handshake URLs engine.io treats as new sessions although they mention `sid`. */
const POLLING_HANDSHAKES = [
  '/socket.io/?EIO=4&transport=polling&sid=',
  '/socket.io/?EIO=4&transport=polling&sid',
  '/socket.io/&sid=?EIO=4&transport=polling',
  '/socket.io/?sid=x&EIO=4&transport=polling&sid=',
  '/socket.io/?EIO=4&transport=polling&%73id=',
  '/socket.io/?EIO=4&transport=polling&s%69d=',
];
const WEBSOCKET_HANDSHAKES = ['/socket.io/?EIO=4&transport=websocket&sid=', '/socket.io/&sid=x?EIO=4&transport=websocket', '/socket.io/?EIO=4&transport=websocket&sid=a&sid='];

const statusOf = async (url: string, path: string) => {
  const r = await fetch(`${url}${path}`);
  await r.body?.cancel();
  return r.status;
};
/** The status line's code of a raw WebSocket upgrade request. */
const upgradeStatus = async (port: number, path: string) => {
  const { response } = await rawTcp(port, upgradeRequest(port, [], path), 5000, (r) => r.includes('\r\n\r\n'));
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
};

describe('the handshake limit counts every spelling of a new session', () => {
  test('with RATE_LIMIT_HANDSHAKES=3/1m, sid variants get 429 once the budget is spent', async () => {
    const { url } = await serve({ RATE_LIMIT_HANDSHAKES: '3/1m' });
    const port = Number(new URL(url).port);
    // Each variant opens a session while the budget lasts: engine.io really takes them as handshakes.
    expect(await statusOf(url, POLLING_HANDSHAKES[0]!)).toBe(200);
    expect(await statusOf(url, POLLING_HANDSHAKES[2]!)).toBe(200);
    expect(await upgradeStatus(port, WEBSOCKET_HANDSHAKES[0]!)).toBe(101);
    for (const path of POLLING_HANDSHAKES) expect(await statusOf(url, path), path).toBe(429);
    for (const path of WEBSOCKET_HANDSHAKES) expect(await upgradeStatus(port, path), path).toBe(429);
  });

  test('requests of an existing session pass, however its sid is spelt', async () => {
    const { url } = await serve({ RATE_LIMIT_HANDSHAKES: '1/1m' });
    const open = await (await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).text();
    const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
    expect(await statusOf(url, '/socket.io/?EIO=4&transport=polling')).toBe(429);
    const post = (path: string) => fetch(`${url}${path}`, { method: 'POST', body: '40', headers: { 'content-type': 'text/plain' } });
    expect((await post(`/socket.io/?EIO=4&transport=polling&sid=&sid=${sid}`)).status).toBe(200);
    expect((await post(`/socket.io/?EIO=4&transport=polling&%73id=${sid}`)).status).toBe(200);
  });
});

describe('during a drain', () => {
  let instance: Instance | undefined;
  afterAll(async () => {
    closeAllClients();
    await instance?.kill();
  });

  test("a client with query {sid: ''} is refused 503 and stores nothing", async () => {
    instance = await startInstance({ env: { SHUTDOWN_NOTICE_MS: '6000', SHUTDOWN_TIMEOUT_MS: '20000', RATE_LIMIT_HANDSHAKES: '1000/1m' } });
    const { url, port } = instance;
    // A connected client keeps the drain in its notice period.
    const stay = await connect(url, await token('stayer'));
    expect((await call(stay, 'join_channel', 'general')).ok).toBe(true);
    const notice = next(stay, 'server_shutdown');
    instance.proc.kill('SIGTERM');
    await notice;

    for (const path of POLLING_HANDSHAKES) expect(await statusOf(url, path), path).toBe(503);
    for (const path of WEBSOCKET_HANDSHAKES) expect(await upgradeStatus(port, path), path).toBe(503);
    for (const transports of [['polling'], ['websocket']]) {
      const refused = connect(url, await token('latecomer'), { transports, query: { sid: '' } });
      await expect(refused, transports[0]).rejects.toThrow();
    }
    expect(await storedMessages(url, 'general', await token('auditor', { admin: true }))).toEqual([]);
  });
});
