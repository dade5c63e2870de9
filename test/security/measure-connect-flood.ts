/**
 * Issue 13 item 1, the measurement (not a test): refused connect packets with random JWT `alg`
 * values against a built instance, then the series on /metrics and the server's RSS before and after.
 *
 *   npm run build && npx tsx test/security/measure-connect-flood.ts [packets=20000]
 *
 * Two runs: the attack as reported (every packet on one Engine.IO session), and the same number of
 * refusals spread over as many sessions as a raised RATE_LIMIT_HANDSHAKES lets through.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startInstance, type Instance } from '../helpers/instance.js';
import { rssOf } from '../helpers/processes.js';

const PACKETS = Number(process.argv[2] ?? 20_000);
const PARALLEL = 20;
const SETTLE_MS = 15_000;

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const packet = () => `40${JSON.stringify({ token: `${b64({ alg: `x${randomBytes(6).toString('hex')}` })}.${b64({ sub: 'm', exp: 9e9 })}.c2ln` })}`;

/** Opens one raw session, sends `count` refused connect packets, resolves with the refusals received once it is closed. */
function session(url: string, count: number): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`);
    let refused = 0;
    ws.on('error', () => undefined);
    ws.on('message', (d) => {
      const f = d.toString();
      if (f.startsWith('0{')) for (let i = 0; i < count && ws.readyState === WebSocket.OPEN; i++) ws.send(packet());
      else if (f.startsWith('44')) refused++;
    });
    ws.on('close', () => resolve(refused));
    ws.on('unexpected-response', () => resolve(0));
  });
}

async function snapshot(inst: Instance) {
  const text = await (await fetch(`${inst.url}/metrics`)).text();
  const names = text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.slice(0, l.lastIndexOf(' ')));
  return { series: names.length, names, metricsBytes: text.length, rssMb: +(rssOf(inst.proc.pid!) / 1024 / 1024).toFixed(1) };
}

const strip = ({ names: _, ...rest }: Awaited<ReturnType<typeof snapshot>>) => rest;

async function run(name: string, env: Record<string, string>, spread: boolean) {
  const inst = await startInstance({ env: { LOG_LEVEL: 'warn', ...env } });
  try {
    // The first refusal of each kind creates its series: one session refused one by one, one flooded.
    await session(inst.url, 3);
    await session(inst.url, 100);
    const before = await snapshot(inst);
    const started = Date.now();
    let refused = 0;
    let sessions = 0;
    if (!spread) {
      refused = await session(inst.url, PACKETS);
      sessions = 1;
    } else {
      while (refused < PACKETS) {
        const got = await Promise.all(Array.from({ length: PARALLEL }, () => session(inst.url, 3)));
        sessions += PARALLEL;
        refused += got.reduce((a, b) => a + b, 0);
      }
    }
    const after = await snapshot(inst);
    // Garbage of closed sessions is collected lazily: RSS again after a quiet while.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const settled = strip(await snapshot(inst));
    const added = after.names.filter((n) => !before.names.includes(n));
    console.log(JSON.stringify({ run: name, packetsSent: spread ? sessions * 3 : PACKETS, refusalsReceived: refused, sessions, ms: Date.now() - started, before: strip(before), after: strip(after), settled, added }));
  } finally {
    await inst.kill();
  }
}

await run('one session, as attacked', {}, false);
await run('spread over sessions (RATE_LIMIT_HANDSHAKES raised)', { RATE_LIMIT_HANDSHAKES: '1000000/1m' }, true);
process.exit(0);
