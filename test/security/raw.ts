import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net';
import { afterAll, afterEach, expect } from 'vitest';
import WebSocket from 'ws';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { startServer, type TestServer } from '../helpers/server.js';
export { rssOf } from '../helpers/processes.js';
import { token } from '../helpers/tokens.js';

/**
 * For a test file whose tests each start servers of their own: returns the starter, and closes every
 * client after each test and every server after the file.
 */
export function useServers(): (...args: Parameters<typeof startServer>) => Promise<TestServer> {
  const servers: TestServer[] = [];
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await Promise.all(servers.map((s) => s.close()));
  });
  return async (...args) => {
    const s = await startServer(...args);
    servers.push(s);
    return s;
  };
}

/** What must never appear in an error text: stack frames, source paths, SQL, driver names, the test secret. */
export const LEAK = /\bat [\w.<>]+ \(|\.[cm]?[jt]s:\d+|node_modules|sqlite|postgres|SQLSTATE|syntax error|switchboard-test-secret|BEGIN PUBLIC KEY|TypeError|RangeError|ReferenceError/i;
/** SQL keywords as a driver would print them (upper case). */
export const SQL_LEAK = /\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|RETURNING)\b/;

/** Asserts an error body has the contract's code and a message that leaks nothing. */
export function expectError(body: unknown, code: string): void {
  const b = body as { code?: string; message?: string } | undefined;
  expect(b?.code, JSON.stringify(body)).toBe(code);
  expect(typeof b?.message).toBe('string');
  expect(b!.message!.length).toBeLessThanOrEqual(300);
  expect(b!.message).not.toMatch(LEAK);
  expect(b!.message).not.toMatch(SQL_LEAK);
}

/** A fresh, well-behaved client can still connect, join `general`, send and be acknowledged. */
export async function expectServes(url: string): Promise<void> {
  const s = await connect(url, await token(`probe-${Math.random().toString(36).slice(2, 8)}`));
  try {
    expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
    const ack = await call(s, 'send_message', { channelId: 'general', content: 'still here', clientMessageId: `probe-${Date.now()}-${Math.random()}` });
    expect(ack.ok, JSON.stringify(ack)).toBe(true);
  } finally {
    s.close();
  }
}

/** Every stored message of a channel, read through the admin API (oldest first). */
export async function storedMessages(url: string, channelId: string, adminToken?: string): Promise<{ seq: number; content: string; clientMessageId: string; userId: string }[]> {
  const t = adminToken ?? (await token('auditor', { admin: true }));
  const out: { seq: number; content: string; clientMessageId: string; userId: string }[] = [];
  let after = 0;
  for (let page = 0; page < 1000; page++) {
    const r = await fetch(`${url}/api/channels/${encodeURIComponent(channelId)}/messages?afterSeq=${after}&limit=200`, { headers: { authorization: `Bearer ${t}` } });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { messages: { seq: number; content: string; clientMessageId: string; userId: string }[]; hasMore: boolean };
    out.push(...body.messages);
    if (!body.hasMore || body.messages.length === 0) break;
    after = body.messages.at(-1)!.seq;
  }
  return out;
}

/**
 * A raw Engine.IO v4 WebSocket client: it speaks the framing by hand, so tests can send what no
 * well-behaved client would.
 */
export interface RawClient {
  ws: WebSocket;
  /** Text frames received, in order. */
  frames: string[];
  closed: Promise<{ code: number }>;
  isOpen(): boolean;
  send(data: string | Buffer): void;
  /** Waits for a received frame that matches. */
  waitFrame(pred: (f: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
}

export async function rawClient(url: string, options: { token?: string | undefined; connect?: boolean; headers?: Record<string, string> } = {}): Promise<RawClient> {
  const wsUrl = `${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
  const ws = new WebSocket(wsUrl, { headers: options.headers ?? {} });
  const frames: string[] = [];
  let open = false;
  const closed = new Promise<{ code: number }>((resolve) => ws.once('close', (code) => resolve({ code })));
  ws.on('error', () => undefined);
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? `<binary ${(data as Buffer).length}>` : data.toString();
    // Answer the server's heartbeat so the session stays up however long a test takes.
    if (text === '2') ws.send('3');
    frames.push(text);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      open = true;
      resolve();
    });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
  void closed.then(() => (open = false));
  const client: RawClient = {
    ws,
    frames,
    closed,
    isOpen: () => open && ws.readyState === WebSocket.OPEN,
    send: (data) => ws.send(data),
    waitFrame: (pred, what, timeoutMs = 5000) =>
      waitFor(() => frames.find(pred), what, timeoutMs, 10),
  };
  await client.waitFrame((f) => f.startsWith('0{'), 'the Engine.IO open packet');
  if (options.connect !== false) {
    const t = options.token ?? (await token(`raw-${Math.random().toString(36).slice(2, 8)}`));
    ws.send(`40${JSON.stringify({ token: t })}`);
    await client.waitFrame((f) => f.startsWith('40{') || f.startsWith('44'), 'the Socket.IO CONNECT answer');
  }
  return client;
}

/** The parsed ack of id `id` (frame `43<id>[...]`). */
export async function rawAck(c: RawClient, id: number, timeoutMs = 5000): Promise<any> {
  const prefix = `43${id}[`;
  const frame = await c.waitFrame((f) => f.startsWith(prefix), `ack ${id}`, timeoutMs);
  return (JSON.parse(frame.slice(prefix.length - 1)) as unknown[])[0];
}

/** Sends raw bytes on a new TCP connection and resolves with everything the server answered before closing (or timeoutMs). */
export function rawTcp(
  port: number,
  payload: Buffer | string | (Buffer | string)[],
  timeoutMs = 5000,
  until?: (response: string) => boolean,
): Promise<{ response: string; socket: TcpSocket }> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ response: Buffer.concat(chunks).toString('latin1'), socket });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('data', (d) => {
      chunks.push(d);
      if (until?.(Buffer.concat(chunks).toString('latin1'))) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', () => {
      for (const p of Array.isArray(payload) ? payload : [payload]) socket.write(p);
    });
  });
}

/** A masked client WebSocket frame (RFC 6455 §5.2). */
export function wsFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len]) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (len >= 126 && len < 65536) {
    head[0] = (fin ? 0x80 : 0) | opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else if (len >= 65536) {
    head[0] = (fin ? 0x80 : 0) | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([head, mask, body]);
}

/** The HTTP/1.1 upgrade request of an Engine.IO WebSocket (no session id), optionally after extra header lines. */
export function upgradeRequest(port: number, extraHeaderLines: string[] = [], path = '/socket.io/?EIO=4&transport=websocket'): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    ...extraHeaderLines,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    '',
    '',
  ].join('\r\n');
}
