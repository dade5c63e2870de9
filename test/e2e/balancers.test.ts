/**
 * Sticky sessions proven through REAL nginx and HAProxy (the deploy/ configs, rendered for loopback
 * ports) in front of 3 instances sharing a private redis-server and one PostgreSQL database.
 *
 * Node's socket.io-client keeps cookies only with `withCredentials: true` (engine.io-client then
 * creates a cookie jar for its polling requests and sends the jar on the WebSocket upgrade); that is
 * what cookie affinity (HAProxy's SERVERID, nginx's sb_affinity) needs outside a browser.
 */
import { Agent } from 'node:http';
import { Fetch, io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Message } from 'switchboard-client/protocol';
import { startHaproxy, startNginx, type Balancer } from '../helpers/balancer.js';
import { call, closeAllClients, collect, connect, next, type TestSocket } from '../helpers/client.js';
import type { Cluster } from '../helpers/instance.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { token } from '../helpers/tokens.js';

let stack: Stack | undefined;
let cluster: Cluster;
const balancers: Balancer[] = [];
let nginxIpHash: Balancer;
let nginxCookie: Balancer;
let nginxRoundRobin: Balancer;
let haproxy: Balancer;
let haproxyRoundRobin: Balancer;
const agents: Agent[] = [];

beforeAll(async () => {
  stack = await startStack('balancers', 3, {
    // The balancers are on loopback: their X-Forwarded-For names the client.
    TRUST_PROXY: 'loopback',
    // Every test client comes from 127.0.0.x; this file opens ~100 sessions, near the default per-address limit.
    RATE_LIMIT_HANDSHAKES: '1000/60s',
    // (d): a drain long enough that new sessions arrive while HAProxy still counts the instance up.
    SHUTDOWN_NOTICE_MS: '3000',
  });
  cluster = stack.cluster;
  const upstreams = cluster.instances.map((i) => i.url);
  const add = async (b: Promise<Balancer>) => {
    const started = await b;
    balancers.push(started);
    return started;
  };
  nginxIpHash = await add(startNginx({ upstreams, sticky: 'ip_hash' }));
  nginxCookie = await add(startNginx({ upstreams, sticky: 'cookie' }));
  nginxRoundRobin = await add(startNginx({ upstreams, sticky: 'none' }));
  haproxy = await add(startHaproxy({ upstreams, sticky: true }));
  haproxyRoundRobin = await add(startHaproxy({ upstreams, sticky: false }));
});

afterAll(async () => {
  closeAllClients();
  for (const a of agents) a.destroy();
  await Promise.all(balancers.map((b) => b.stop()));
  await stack?.stop();
});

let userSeq = 0;
const user = (prefix: string) => `${prefix}-${++userSeq}`;

/** An http.Agent whose connections come from another loopback address (another /24 for ip_hash). */
function agentFrom(localAddress: string): string {
  const a = new Agent({ keepAlive: true, localAddress } as ConstructorParameters<typeof Agent>[0]);
  agents.push(a);
  // engine.io-client hands `agent` to its Node transports (XHR polling and ws); its type says string.
  return a as unknown as string;
}

/** Joins `general`; resolves with the instance that serves this socket (the `joined` event says). */
async function joinGeneral(s: TestSocket): Promise<string> {
  const joined = next(s, 'joined');
  const ack = await call(s, 'join_channel', 'general');
  expect(ack.ok).toBe(true);
  return (await joined).instance;
}

type ClientOpts = Parameters<typeof connect>[2];

/**
 * Connects clients through `url` until they sit on at least two instances (at least `min` clients),
 * so that chatting between them crosses instances.
 */
async function spreadClients(url: string, prefix: string, opts: (i: number) => ClientOpts, min = 3, max = 12) {
  const clients: { socket: TestSocket; instance: string }[] = [];
  for (let i = 0; i < max; i++) {
    const socket = await connect(url, await token(user(prefix)), opts(i));
    clients.push({ socket, instance: await joinGeneral(socket) });
    if (clients.length >= min && new Set(clients.map((c) => c.instance)).size >= 2) break;
  }
  return clients;
}

/** The first client sends; every client, whatever its instance, gets that message. */
async function chatAcross(clients: { socket: TestSocket; instance: string }[], tag: string) {
  expect(new Set(clients.map((c) => c.instance)).size).toBeGreaterThanOrEqual(2);
  const clientMessageId = `${tag}-${Date.now()}`;
  const arrivals = clients.map(({ socket }) =>
    waitFor(() => received.get(socket)?.find((m) => m.clientMessageId === clientMessageId), `${tag}: new_message on every client`, 10_000),
  );
  const ack = await call(clients[0]!.socket, 'send_message', { channelId: 'general', content: `hello from ${tag}`, clientMessageId });
  expect(ack.ok).toBe(true);
  const got = await Promise.all(arrivals);
  for (const m of got) expect(m.id).toBe(ack.message.id);
}

const received = new WeakMap<TestSocket, Message[]>();
function listen(s: TestSocket): TestSocket {
  received.set(s, collect(s, 'new_message'));
  return s;
}

/** Raw Engine.IO long-polling: one handshake, then three POSTs (a noop packet) with its sid. */
async function rawPollingSession(base: string, keepCookies: boolean) {
  const hs = await fetch(`${base}/socket.io/?EIO=4&transport=polling`);
  expect(hs.status).toBe(200);
  const body = await hs.text();
  expect(body.startsWith('0{')).toBe(true);
  const sid = (JSON.parse(body.slice(1)) as { sid: string }).sid;
  const cookie = keepCookies ? hs.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ') : '';
  const replies: { status: number; body: string }[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${base}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, {
      method: 'POST',
      body: '6',
      headers: { 'content-type': 'text/plain;charset=UTF-8', ...(cookie ? { cookie } : {}) },
    });
    replies.push({ status: r.status, body: await r.text() });
  }
  return { cookie, replies };
}

const SESSION_ID_UNKNOWN = { status: 400, body: '{"code":1,"message":"Session ID unknown"}' };

describe('(a) long-polling clients through sticky balancers', () => {
  test('raw Engine.IO: every request of a session reaches its instance (cookie affinity, ip_hash)', async () => {
    for (const [b, cookieName] of [
      [haproxy, 'SERVERID'],
      [nginxCookie, 'sb_affinity'],
      [nginxIpHash, undefined],
    ] as const) {
      const { cookie, replies } = await rawPollingSession(b.url, true);
      if (cookieName) expect(cookie).toContain(`${cookieName}=`);
      expect(replies).toEqual([
        { status: 200, body: 'ok' },
        { status: 200, body: 'ok' },
        { status: 200, body: 'ok' },
      ]);
    }
  });

  test('HAProxy (SERVERID cookie): polling clients on different instances chat', async () => {
    const clients = await spreadClients(haproxy.url, 'ha-poll', () => ({ transports: ['polling'], withCredentials: true }));
    for (const c of clients) listen(c.socket);
    await chatAcross(clients, 'ha-poll');
    for (const c of clients) expect(c.socket.io.engine.transport.name).toBe('polling');
  });

  test('nginx (consistent hash on the affinity cookie): polling clients on different instances chat', async () => {
    const clients = await spreadClients(nginxCookie.url, 'ng-cookie-poll', () => ({ transports: ['polling'], withCredentials: true }));
    for (const c of clients) listen(c.socket);
    await chatAcross(clients, 'ng-cookie-poll');
  });

  test('nginx (ip_hash): one address pins to one instance; clients from other addresses chat across instances', async () => {
    // The NAT pitfall, shown: every client from 127.0.0.1 gets the same instance.
    const sameAddress = [];
    for (let i = 0; i < 3; i++) {
      const s = await connect(nginxIpHash.url, await token(user('ng-ip-same')), { transports: ['polling'] });
      sameAddress.push(await joinGeneral(s));
    }
    expect(new Set(sameAddress).size).toBe(1);

    // ip_hash keys on the first three octets: 127.0.N.1 for several N are different "clients".
    const clients = await spreadClients(nginxIpHash.url, 'ng-ip-poll', (i) => ({ transports: ['polling'], agent: agentFrom(`127.0.${i + 1}.1`) }), 3, 10);
    for (const c of clients) listen(c.socket);
    await chatAcross(clients, 'ng-ip-poll');
  });
});

describe('(b) negative control: the same through round-robin upstreams', () => {
  test('raw Engine.IO: requests of one session land on other instances, which answer "Session ID unknown"', async () => {
    for (const b of [nginxRoundRobin, haproxyRoundRobin]) {
      const { replies } = await rawPollingSession(b.url, true);
      // Three instances in turn: the handshake went to one, at least two of the next three go elsewhere.
      expect(replies.filter((r) => r.status === 400)).toContainEqual(SESSION_ID_UNKNOWN);
      for (const r of replies) expect([200, 400]).toContain(r.status);
      expect(replies.filter((r) => r.status === 400).length).toBeGreaterThanOrEqual(2);
    }
  });

  test('socket.io-client with transports ["polling"] cannot connect: its polling request gets "Session ID unknown"', async () => {
    type TransportError = Error & { type?: string; description?: unknown; context?: unknown };
    const fail = async (url: string, opts: ClientOpts) =>
      (await connect(url, await token(user('rr-poll')), { withCredentials: true, ...opts }).then(
        () => undefined,
        (e: unknown) => e,
      )) as TransportError | undefined;
    for (const b of [nginxRoundRobin, haproxyRoundRobin]) {
      // The default Node polling transport (XHR): a transport error carrying the HTTP status.
      const xhr = await fail(b.url, { transports: ['polling'] });
      expect(xhr, 'connecting through a round-robin upstream must fail').toBeInstanceOf(Error);
      expect(xhr!.type).toBe('TransportError');
      expect(xhr!.message).toMatch(/^xhr (poll|post) error$/);
      expect(xhr!.description).toBe(400);
      // The fetch-based polling transport keeps the Response as the error's context: read its body.
      const viaFetch = await fail(b.url, { transports: [Fetch] });
      expect(viaFetch!.type).toBe('TransportError');
      expect(viaFetch!.message).toMatch(/^fetch (read|write) error$/);
      expect(viaFetch!.description).toBe(400);
      expect(await (viaFetch!.context as Response).text()).toBe(SESSION_ID_UNKNOWN.body);
    }
  });
});

describe('(c) WebSocket clients upgrade and chat through each balancer', () => {
  const upgraded = (s: TestSocket) =>
    waitFor(() => s.io.engine.transport.name === 'websocket', 'the upgrade to WebSocket', 10_000);

  test.each([
    ['HAProxy', () => haproxy, (_i: number): ClientOpts => ({ transports: ['polling', 'websocket'], withCredentials: true })],
    ['nginx cookie', () => nginxCookie, (_i: number): ClientOpts => ({ transports: ['polling', 'websocket'], withCredentials: true })],
    ['nginx ip_hash', () => nginxIpHash, (i: number): ClientOpts => ({ transports: ['polling', 'websocket'], agent: agentFrom(`127.0.${i + 20}.1`) })],
  ])('%s', async (name, balancer, opts) => {
    const clients = await spreadClients(balancer().url, `ws-${name.replace(/\W+/g, '-')}`, opts);
    for (const c of clients) {
      listen(c.socket);
      await upgraded(c.socket);
    }
    await chatAcross(clients, `ws-${name.replace(/\W+/g, '-')}`);
    for (const c of clients) expect(c.socket.io.engine.transport.name).toBe('websocket');
  });
});

/**
 * A client that behaves as the contract asks: on `server_shutdown` it reconnects after
 * `reconnectDelay` (a fresh Engine.IO session: no affinity cookie, so the balancer picks again), and
 * it rejoins `general` on every connection.
 */
function resilientClient(url: string, jwt: string) {
  const socket: TestSocket = io(url, {
    auth: { token: jwt },
    withCredentials: true,
    forceNew: true,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
  });
  const state = { ready: false, instances: [] as string[], shutdownNotices: 0 };
  socket.on('connect', () => {
    joinGeneral(socket).then(
      (instance) => {
        state.instances.push(instance);
        state.ready = true;
      },
      () => {
        if (socket.connected) socket.disconnect().connect();
      },
    );
  });
  socket.on('disconnect', (reason) => {
    state.ready = false;
    // A disconnect made by the server is not retried by socket.io-client itself.
    if (reason === 'io server disconnect') setTimeout(() => socket.connect(), 100);
  });
  socket.on('server_shutdown', ({ reconnectDelay }) => {
    state.shutdownNotices++;
    setTimeout(() => socket.disconnect().connect(), reconnectDelay);
  });
  return { socket, state, close: () => socket.close() };
}

describe('(d) draining behind HAProxy', () => {
  test('SIGTERM one instance: no new session reaches it once /readyz is 503; its clients move without losing an acknowledged message', async () => {
    // Clients until one sits on each of two instances: the victim (the sender's) and a survivor.
    const sender = resilientClient(haproxy.url, await token(user('drain-sender')));
    const others: ReturnType<typeof resilientClient>[] = [];
    try {
      await waitFor(() => sender.state.ready, 'the sender to join', 10_000);
      const victimId = sender.state.instances[0]!;
      const victim = cluster.instances.find((i) => i.id === victimId)!;
      let listener: ReturnType<typeof resilientClient> | undefined;
      for (let i = 0; i < 12 && !listener; i++) {
        const c = resilientClient(haproxy.url, await token(user('drain-listener')));
        others.push(c);
        await waitFor(() => c.state.ready, 'a listener to join', 10_000);
        if (c.state.instances[0] !== victimId) listener = c;
      }
      expect(listener, 'a client on another instance').toBeDefined();
      const heard = collect(listener!.socket, 'new_message');

      // The sender sends without pause; each message is retried (same clientMessageId) until acknowledged.
      const acked: Message[] = [];
      let stopSending = false;
      const sending = (async () => {
        for (let n = 0; !stopSending; n++) {
          const clientMessageId = `drain-${n}`;
          for (;;) {
            await waitFor(() => sender.state.ready, 'the sender to be connected', 15_000);
            const ack = await (sender.socket.timeout(3000) as unknown as { emitWithAck(e: string, p: unknown): Promise<any> })
              .emitWithAck('send_message', { channelId: 'general', content: `message ${n}`, clientMessageId })
              .catch(() => undefined);
            if (ack?.ok) {
              acked.push(ack.message as Message);
              break;
            }
            if (ack && ack.error?.code !== 'FORBIDDEN' && ack.error?.code !== 'UNAVAILABLE') throw new Error(`send failed: ${JSON.stringify(ack)}`);
            await sleep(100);
          }
          await sleep(100);
        }
      })();
      await waitFor(() => acked.length >= 5, 'five acknowledged messages before the SIGTERM', 10_000);

      const exited = victim.stop('SIGTERM');
      await waitFor(async () => (await fetch(`${victim.url}/readyz`).catch(() => undefined))?.status === 503 || victim.proc.exitCode !== null, 'the victim to report 503 on /readyz', 5000);

      // New sessions from now on, through HAProxy: none lands on the draining instance.
      const fresh: string[] = [];
      for (let i = 0; i < 6; i++) {
        const s = await connect(haproxy.url, await token(user('drain-new')), { transports: ['polling', 'websocket'], withCredentials: true });
        fresh.push(await joinGeneral(s));
      }
      expect(fresh.filter((id) => id === victimId)).toEqual([]);

      expect(await exited).toBe(0);
      await waitFor(() => sender.state.ready && sender.state.instances.length >= 2, 'the sender to reconnect', 15_000);
      const movedTo = sender.state.instances.at(-1)!;
      expect(movedTo).not.toBe(victimId);
      expect(sender.state.shutdownNotices).toBeGreaterThanOrEqual(1);
      const afterMove = acked.length;
      await waitFor(() => acked.length >= afterMove + 3, 'three more acknowledged messages after the move', 10_000);
      stopSending = true;
      await sending;

      // Every acknowledged message is stored (history on a surviving instance) and reached the listener.
      const firstSeq = Math.min(...acked.map((m) => m.seq));
      const page = await call(listener!.socket, 'history', { channelId: 'general', afterSeq: firstSeq - 1, limit: 200 });
      expect(page.ok).toBe(true);
      const stored = new Map((page.messages as Message[]).map((m) => [m.id, m]));
      for (const m of acked) expect(stored.get(m.id), `acked message ${m.clientMessageId} in history`).toMatchObject({ seq: m.seq, content: m.content });
      const ids = new Set(acked.map((m) => m.id));
      expect(ids.size).toBe(acked.length);
      await waitFor(() => acked.every((m) => heard.some((h) => h.id === m.id)), 'the listener to have every acknowledged message', 10_000);
    } finally {
      sender.close();
      for (const c of others) c.close();
    }
  }, 90_000);
});
