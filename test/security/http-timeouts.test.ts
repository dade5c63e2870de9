import { connect as tcpConnect, type Socket } from 'node:net';
import { beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { token } from '../helpers/tokens.js';
import { expectError, expectServes, rawTcp, upgradeRequest, useServers } from './raw.js';

// Issue 13 item 5: HTTP requests must arrive within HTTP_REQUEST_TIMEOUT_MS (a trickled body is cut
// off, REST and Engine.IO polling alike) without cutting long-polls, and one client address may hold
// at most MAX_HTTP_CONNECTIONS_PER_IP connections.

const serve = useServers();
const BODY_BYTES = 200;

interface Trickle {
  /** Resolves when the server closed the connection, with what it answered. */
  closed: Promise<string>;
  /** Body bytes sent so far. */
  sent(): number;
}

/** Sends `head` (request line and headers announcing BODY_BYTES of body), then one body byte a second. */
function trickle(port: number, head: string): Trickle {
  const socket: Socket = tcpConnect({ host: '127.0.0.1', port });
  let sent = 0;
  let answer = '';
  socket.on('error', () => undefined);
  socket.on('data', (d) => (answer += d.toString('latin1')));
  socket.on('connect', () => socket.write(head));
  const timer = setInterval(() => {
    if (sent < BODY_BYTES - 1 && socket.writable) socket.write('x', () => sent++);
  }, 1000);
  const closed = new Promise<string>((resolve) =>
    socket.once('close', () => {
      clearInterval(timer);
      resolve(answer);
    }),
  );
  return { closed, sent: () => sent };
}

const post = (path: string, port: number, headers: string[] = []) =>
  [`POST ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Content-Length: ${BODY_BYTES}`, ...headers, '', ''].join('\r\n');

describe('a request must arrive within HTTP_REQUEST_TIMEOUT_MS', () => {
  let url: string;
  let port: number;
  beforeAll(async () => {
    ({ url } = await serve({ HTTP_REQUEST_TIMEOUT_MS: '2000', PING_INTERVAL_MS: '4000', PING_TIMEOUT_MS: '5000' }));
    port = Number(new URL(url).port);
  });
  const polling = () => `${url}/socket.io/?EIO=4&transport=polling`;
  const openSession = async () => (JSON.parse((await (await fetch(polling())).text()).slice(1)) as { sid: string }).sid;

  test('a body trickled to POST /api/channels is cut off: the connection is closed', async () => {
    const admin = await token('root', { admin: true });
    const t = trickle(port, post('/api/channels', port, [`Authorization: Bearer ${admin}`, 'Content-Type: application/json']));
    const answer = await waitFor(() => t.closed, 'the server to close the trickling connection', 20_000);
    expect(t.sent()).toBeLessThan(BODY_BYTES - 1);
    // Answered in the contract's shape, when the socket could still be written to.
    if (answer) expect(answer).toMatch(/^HTTP\/1\.1 408 [^]*"code":"INVALID_PAYLOAD"/);
    await expectServes(url);
  });

  test('a body trickled to an Engine.IO polling POST is cut off: the connection is closed', async () => {
    const sid = await openSession();
    const t = trickle(port, post(`/socket.io/?EIO=4&transport=polling&sid=${sid}`, port, ['Content-Type: text/plain;charset=UTF-8']));
    await waitFor(() => t.closed, 'the server to close the trickling polling connection', 20_000);
    expect(t.sent()).toBeLessThan(BODY_BYTES - 1);
    await expectServes(url);
  });

  test('a long-poll held longer than the request timeout is answered, not cut', async () => {
    const sid = await openSession();
    const session = `${polling()}&sid=${sid}`;
    expect((await fetch(session, { method: 'POST', body: `40${JSON.stringify({ token: await token('poller') })}` })).status).toBe(200);
    expect(await (await fetch(session)).text()).toMatch(/^40\{/);
    // Nothing is queued: this poll is held until the server's ping, PING_INTERVAL_MS (4 s) from the
    // handshake, past the 2 s request timeout.
    const held = await fetch(session);
    expect(held.status).toBe(200);
    expect(await held.text()).toBe('2');
  });
});

describe('connections per client address (MAX_HTTP_CONNECTIONS_PER_IP)', () => {
  const keepAliveGet = (port: number, extra: string[] = []) =>
    [`GET /healthz HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: keep-alive', ...extra, '', ''].join('\r\n');
  const untilAnswered = (r: string) => /\r\n\r\n[^]*\}/.test(r);
  /** A keep-alive connection that has been answered once and stays open. */
  const heldOpen = (port: number, extra: string[] = []) =>
    new Promise<Socket>((resolve) => {
      const socket = tcpConnect({ host: '127.0.0.1', port }, () => socket.write(keepAliveGet(port, extra)));
      let answer = '';
      socket.on('error', () => undefined);
      socket.on('data', (d) => {
        answer += d.toString('latin1');
        if (untilAnswered(answer)) resolve(socket);
      });
    });

  test('one connection over the cap is answered 429 RATE_LIMITED and closed; a freed slot is usable', async () => {
    const { url } = await serve({ MAX_HTTP_CONNECTIONS_PER_IP: '3' });
    const port = Number(new URL(url).port);
    const held = await Promise.all([0, 1, 2].map(() => heldOpen(port)));
    const { response } = await rawTcp(port, keepAliveGet(port), 3000, untilAnswered);
    expect(response).toMatch(/^HTTP\/1\.1 429/);
    const body = JSON.parse(/\{[^]*\}/.exec(response.slice(response.indexOf('\r\n\r\n')))![0]) as { error: { code: string; retryAfterMs: number } };
    expectError(body.error, 'RATE_LIMITED');
    expect(body.error.retryAfterMs).toBeGreaterThan(0);
    // A WebSocket upgrade is refused the same way.
    const ws = await rawTcp(port, upgradeRequest(port), 3000, untilAnswered);
    expect(ws.response).toMatch(/^HTTP\/1\.1 429/);
    held[0]!.destroy();
    await waitFor(async () => (await fetch(`${url}/healthz`)).status === 200, 'a slot to free up');
    for (const s of held) s.destroy();
    await expectServes(url);
  });

  test('behind a trusted proxy each forwarded client address has its own cap', async () => {
    const { url } = await serve({ MAX_HTTP_CONNECTIONS_PER_IP: '1', TRUST_PROXY: 'loopback' });
    const port = Number(new URL(url).port);
    const first = await heldOpen(port, ['X-Forwarded-For: 203.0.113.7']);
    const same = await rawTcp(port, keepAliveGet(port, ['X-Forwarded-For: 203.0.113.7']), 3000, untilAnswered);
    expect(same.response).toMatch(/^HTTP\/1\.1 429/);
    const other = await rawTcp(port, keepAliveGet(port, ['X-Forwarded-For: 203.0.113.8']), 3000, untilAnswered);
    expect(other.response).toMatch(/^HTTP\/1\.1 200/);
    first.destroy();
    const s = await connect(url, await token('after-cap'), { extraHeaders: { 'x-forwarded-for': '203.0.113.9' } });
    expect(s.connected).toBe(true);
  });
});
