/**
 * A load-generator process (forked by bench/run.ts). It holds a share of the clients, each a bare
 * `ws` connection speaking Engine.IO v4 / Socket.IO v5 text framing: `0{…}` open, `40{auth}` connect,
 * `2`→`3` heartbeat, `42[…]` events, `43<id>[…]` acks. No socket.io-client, no JSON.parse per
 * delivery: the send time travels in the message content as `~T<µs since epoch>~S<step>~` and is
 * found with a byte search, so a batched `new_messages` frame is counted message by message.
 */
import { createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import type { ConnSpec, FromWorker, ToWorker } from './ipc.js';
import { BUCKETS, bucketOf, toSparse } from './histogram.js';

const send = (m: FromWorker) => process.send!(m);
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const MARK = Buffer.from('~T');
const TILDE = 0x7e;

interface StepStats {
  deliveries: number;
  frames: number;
  hist: Uint32Array;
}

const steps = new Map<number, StepStats>();
let lastDeliveryAt = 0;
let dropped = 0;
let closing = false;
let acksOk = 0;
let acksErr = 0;
let firstAckError: string | undefined;

function statsOf(step: number): StepStats {
  let s = steps.get(step);
  if (!s) steps.set(step, (s = { deliveries: 0, frames: 0, hist: new Uint32Array(BUCKETS) }));
  return s;
}

/** Counts every message marker in a `42[…]` frame. */
function onEventFrame(data: Buffer): void {
  let pos = data.indexOf(MARK, 2);
  if (pos < 0) return;
  const now = nowUs();
  let counted: StepStats | undefined;
  while (pos >= 0) {
    let i = pos + 2;
    let t = 0;
    let c: number;
    while ((c = data[i]!) !== TILDE && i < data.length) {
      t = t * 10 + (c - 48);
      i++;
    }
    i += 2; // "~S"
    let step = 0;
    while ((c = data[i]!) !== TILDE && i < data.length) {
      step = step * 10 + (c - 48);
      i++;
    }
    if (step > 0) {
      const s = statsOf(step);
      s.deliveries++;
      s.hist[bucketOf(now - t)]!++;
      counted = s;
      lastDeliveryAt = now;
    }
    pos = data.indexOf(MARK, i);
  }
  if (counted) counted.frames++;
}

class Client {
  ws!: WebSocket;
  private ackSeq = 0;
  private waiter: { match: (text: string) => boolean; resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(readonly spec: ConnSpec) {}

  connect(token: string, batch: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const url = `${this.spec.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
      const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 15_000 });
      this.ws = ws;
      let open = false;
      const timer = setTimeout(() => fail(new Error('handshake timed out')), 20_000);
      const fail = (e: Error) => {
        clearTimeout(timer);
        if (!open) {
          open = true;
          reject(e);
          ws.terminate();
        }
      };
      ws.on('error', (e) => fail(e));
      ws.on('close', () => {
        if (!open) fail(new Error('closed during handshake'));
        else if (!closing) dropped++;
        this.waiter?.reject(new Error('closed'));
      });
      ws.on('message', (data: Buffer) => {
        const b0 = data[0];
        if (b0 === 0x34 && data[1] === 0x32) {
          onEventFrame(data);
          if (this.waiter) {
            const text = data.toString();
            if (this.waiter.match(text)) {
              const w = this.waiter;
              this.waiter = undefined;
              w.resolve();
            }
          }
          return;
        }
        if (b0 === 0x32 && data.length === 1) {
          ws.send('3');
          return;
        }
        const text = data.toString();
        if (text.startsWith('43')) {
          if (text.includes('"ok":true')) acksOk++;
          else {
            acksErr++;
            firstAckError ??= text.slice(0, 300);
          }
        } else if (text.startsWith('0{')) {
          ws.send(`40${JSON.stringify(batch ? { token, batch: true } : { token })}`);
        } else if (text.startsWith('40')) {
          open = true;
          clearTimeout(timer);
          resolve();
        } else if (text.startsWith('44')) {
          fail(new Error(`connect refused: ${text.slice(2, 200)}`));
        }
      });
    });
  }

  /** Joins the channel and waits for the `joined` event (every system sends it). */
  join(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('join timed out')), 20_000);
      this.waiter = {
        match: (t) => t.startsWith('42["joined"'),
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.ws.send(`42${++this.ackSeq}["join_channel",${JSON.stringify(this.spec.channel)}]`);
    });
  }

  sendMessage(content: string, acks: boolean): void {
    const id = ++this.ackSeq;
    const body = `["send_message",{"channelId":${JSON.stringify(this.spec.channel)},"content":"${content}","clientMessageId":"${this.spec.userId}-${id}"}]`;
    this.ws.send(acks ? `42${id}${body}` : `42${body}`);
  }
}

let clients: Client[] = [];

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<{ ok: number; failed: number; firstError?: string }> {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const run = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
        ok++;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, run));
  return firstError ? { ok, failed, firstError } : { ok, failed };
}

async function connectAll(m: Extract<ToWorker, { type: 'connect' }>): Promise<void> {
  const key = createSecretKey(Buffer.from(m.secret, 'utf8'));
  const exp = Math.floor(Date.now() / 1000) + 6 * 3600;
  const tokens = await Promise.all(
    m.conns.map((c) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(c.userId).setIssuedAt().setExpirationTime(exp).sign(key)),
  );
  const fresh = m.conns.map((c) => new Client(c));
  const tokenOf = new Map(fresh.map((c, i) => [c, tokens[i]!]));
  const startedAt = Date.now();
  const r = await pool(fresh, m.concurrency, (c) => c.connect(tokenOf.get(c)!, m.batch));
  const doneAt = Date.now();
  clients.push(...fresh);
  send({ type: 'connected', ...r, startedAt, doneAt });
  if (m.join) await joinAll(fresh, m.concurrency);
}

async function joinAll(list: Client[], concurrency: number): Promise<void> {
  const r = await pool(
    list.filter((c) => c.ws.readyState === WebSocket.OPEN),
    concurrency,
    (c) => c.join(),
  );
  send({ type: 'joined', ...r });
}

async function runStep(m: Extract<ToWorker, { type: 'step' }>): Promise<void> {
  const senders = clients.filter((c) => c.spec.sender && c.ws.readyState === WebSocket.OPEN);
  const cpu0 = process.cpuUsage();
  const ack0 = { ok: acksOk, err: acksErr };
  const dropped0 = dropped;
  const t0 = Date.now();
  const measureFrom = t0 + m.warmupMs;
  const until = measureFrom + m.measureMs;
  let sent = 0;
  let sentMeasured = 0;
  let measureStart = 0;
  let measureEnd = 0;
  const pad = (s: string) => s + 'x'.repeat(Math.max(0, m.payload - s.length));
  if (senders.length > 0 && m.rate > 0) {
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = Date.now();
        const end = Math.min(now, until);
        const due = Math.floor((m.rate * (end - t0)) / 1000);
        const measured = now >= measureFrom && now < until;
        while (sent < due) {
          const c = senders[sent % senders.length]!;
          sent++;
          c.sendMessage(pad(`~T${nowUs()}~S${measured ? m.step : 0}~`), m.acks);
          if (measured) {
            sentMeasured++;
            if (!measureStart) measureStart = now;
            measureEnd = now;
          }
        }
        if (now >= until) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(tick, 5);
    });
  } else {
    await sleep(m.warmupMs + m.measureMs);
  }
  // Let the stragglers arrive: stop when nothing measured came for 300 ms (at most 3 s).
  const stopAt = Date.now() + 3000;
  await sleep(200);
  while (Date.now() < stopAt && nowUs() - lastDeliveryAt < 300_000) await sleep(50);
  const s = statsOf(m.step);
  const cpu = process.cpuUsage(cpu0);
  send({
    type: 'stepDone',
    step: m.step,
    sentMeasured,
    measureStart: measureStart || measureFrom,
    measureEnd: measureEnd || until,
    acksOk: acksOk - ack0.ok,
    acksErr: acksErr - ack0.err,
    ...(firstAckError ? { firstAckError } : {}),
    deliveries: s.deliveries,
    frames: s.frames,
    hist: toSparse(s.hist),
    dropped: dropped - dropped0,
    cpuMs: (cpu.user + cpu.system) / 1000,
  });
  steps.delete(m.step);
  firstAckError = undefined;
}

async function closeAll(): Promise<void> {
  closing = true;
  for (const c of clients) c.ws?.terminate();
  clients = [];
  send({ type: 'closed' });
}

process.on('message', (m: ToWorker) => {
  const fail = (err: unknown) => {
    console.error(`loadgen: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  };
  switch (m.type) {
    case 'connect':
      connectAll(m).catch(fail);
      break;
    case 'join':
      joinAll(clients, 64).catch(fail);
      break;
    case 'step':
      runStep(m).catch(fail);
      break;
    case 'close':
      closeAll().then(() => setTimeout(() => process.exit(0), 50), fail);
      break;
  }
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
