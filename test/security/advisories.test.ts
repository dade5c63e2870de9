import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { closeAllClients } from '../helpers/client.js';
import { ROOT, startInstance, type Instance } from '../helpers/instance.js';
import { expectError, expectServes, rawAck, rawClient, rawTcp, rssOf, storedMessages, upgradeRequest, wsFrame } from './raw.js';

// Issue 7 item 4: the dependency tree stays past the published advisories of this stack, and each
// advisory's attack, sent to a real server process, leaves it up with bounded memory.

/** The lowest fixed version of each package (the advisories' patched versions). */
const FIXED = {
  // 8.21.0: memory exhaustion by tiny fragments (CVE-2026-48779, GHSA-96hv-2xvq-fx4p); 8.17.1: too many headers (CVE-2024-37890).
  ws: '8.21.0',
  // 4.2.6: unbounded binary attachments (CVE-2026-33151); 4.2.3: malformed packets (CVE-2023-32695); 4.2.1: `_placeholder` type confusion (CVE-2022-2421).
  'socket.io-parser': '4.2.6',
  // 6.4.2: uncaught exception on a crafted request (CVE-2023-31125); 6.6.7: invalid binary POST (CVE-2026-59725);
  // 6.6.9: polling connection exhaustion and WebTransport sid (GHSA-r635-g3xr-vw7x, GHSA-gr94-w7qr-f4j3).
  'engine.io': '6.6.9',
} as const;

const parse = (v: string) => v.split(/[.+-]/).slice(0, 3).map(Number) as [number, number, number];
const atLeast = (v: string, min: string) => {
  const a = parse(v);
  const b = parse(min);
  for (let i = 0; i < 3; i++) if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  return true;
};

/** Every installed copy of a package, nested ones included. */
function installedVersions(name: string): { path: string; version: string }[] {
  const found: { path: string; version: string }[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 6 || !existsSync(dir)) return;
    const pj = join(dir, name, 'package.json');
    if (existsSync(pj)) found.push({ path: pj, version: (JSON.parse(readFileSync(pj, 'utf8')) as { version: string }).version });
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name === '.bin') continue;
      const sub = join(dir, entry.name);
      if (entry.name.startsWith('@')) {
        for (const scoped of readdirSync(sub, { withFileTypes: true })) if (scoped.isDirectory()) walk(join(sub, scoped.name, 'node_modules'), depth + 1);
      } else walk(join(sub, 'node_modules'), depth + 1);
    }
  };
  walk(join(ROOT, 'node_modules'), 0);
  return found;
}

describe('installed versions are past the advisories', () => {
  for (const [name, min] of Object.entries(FIXED)) {
    test(`${name} >= ${min}, every copy in the tree`, () => {
      const copies = installedVersions(name);
      expect(copies.length).toBeGreaterThan(0);
      for (const c of copies) expect(atLeast(c.version, min), `${c.path} is ${c.version}`).toBe(true);
    });
  }

  test('package.json pins them through overrides', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { overrides?: Record<string, string> };
    for (const name of Object.keys(FIXED)) expect(pkg.overrides?.[name], name).toBeDefined();
  });
});

describe('each advisory attack against a server process', () => {
  let inst: Instance;
  let baseline: number;
  const CHANNEL = 'advisory';
  const MEMORY_SLACK = 150 * 1024 * 1024;

  beforeAll(async () => {
    inst = await startInstance({ env: { DEFAULT_CHANNELS: `general,${CHANNEL}`, RATE_LIMIT_HANDSHAKES: '100000/1s', LOG_LEVEL: 'warn' } });
    await expectServes(inst.url);
    baseline = rssOf(inst.proc.pid!);
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await inst?.kill();
  });

  /** After every attack: the process lives, answers, serves a client, stored nothing, and its memory stayed bounded. */
  async function expectUnharmed(): Promise<void> {
    expect(inst.proc.exitCode).toBeNull();
    expect((await fetch(`${inst.url}/healthz`)).status).toBe(200);
    await expectServes(inst.url);
    expect(await storedMessages(inst.url, CHANNEL)).toEqual([]);
    expect(rssOf(inst.proc.pid!)).toBeLessThan(baseline + MEMORY_SLACK);
    expect(inst.output()).not.toMatch(/uncaught|unhandled|FATAL/i);
  }

  async function joinedRaw() {
    const c = await rawClient(inst.url);
    c.send(`420["join_channel","${CHANNEL}"]`);
    expect((await rawAck(c, 0)).ok).toBe(true);
    return c;
  }

  test('socket.io-parser: a placeholder whose num is "splice" (or another non-index) is refused', async () => {
    for (const num of ['"splice"', '"__proto__"', '"toString"', '-1', '1e9', '0.5', 'null']) {
      const c = await joinedRaw();
      c.send(`451-1["send_message",{"_placeholder":true,"num":${num}}]`);
      c.send(Buffer.from('attachment'));
      // The parser closes the connection, or (num 0.5) resolves to nothing, which the schema refuses.
      const answer = await Promise.race([c.closed.then(() => 'closed' as const), rawAck(c, 1)]);
      if (answer !== 'closed') expectError(answer.error, 'INVALID_PAYLOAD');
      c.ws.terminate();
    }
    await expectUnharmed();
  });

  test('socket.io-parser: unbounded attachment counts (4999-…) are refused, however many binaries follow', async () => {
    for (const header of ['4999-', '45999999999-', '451000-']) {
      const c = await joinedRaw();
      c.send(`${header}["send_message",{"a":{"_placeholder":true,"num":0}}]`);
      for (let i = 0; i < 200 && c.isOpen(); i++) c.send(Buffer.alloc(1024, i));
      await c.closed;
    }
    await expectUnharmed();
  });

  test('engine.io: transport=__proto__ (and other prototype names) is answered 400', async () => {
    for (const t of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '']) {
      const r = await fetch(`${inst.url}/socket.io/?EIO=4&transport=${t}`);
      expect(r.status, t).toBe(400);
      expect(await r.text()).not.toMatch(/at \w+ \(|node_modules/);
      const { response } = await rawTcp(inst.port, upgradeRequest(inst.port, [], `/socket.io/?EIO=4&transport=${t}`));
      expect(response).toMatch(/^HTTP\/1\.1 400/);
    }
    await expectUnharmed();
  });

  test('engine.io: invalid binary polling POSTs (CVE-2026-59725) end that session only', async () => {
    for (const body of [Buffer.from([0xff, 0x00, 0xfe]), Buffer.alloc(0), Buffer.from('bAAAA'), Buffer.from([0x04, 0xff, 0xff, 0xff, 0xff])]) {
      const open = await fetch(`${inst.url}/socket.io/?EIO=4&transport=polling`);
      const sid = (JSON.parse((await open.text()).slice(1)) as { sid: string }).sid;
      const r = await fetch(`${inst.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: body,
      });
      expect([200, 400]).toContain(r.status);
    }
    await expectUnharmed();
  });

  test('ws: an upgrade request with 2,001 headers is refused without a crash', async () => {
    const many = Array.from({ length: 2001 }, () => 'a: b');
    // Extra headers before the upgrade headers push them past maxHeadersCount; after, they are simply many.
    const headersDone = (r: string) => r.includes('\r\n\r\n');
    const before = await rawTcp(inst.port, upgradeRequest(inst.port, many), 5000, headersDone);
    expect(before.response).toMatch(/^HTTP\/1\.1 (400|431)/);
    const after = await rawTcp(inst.port, upgradeRequest(inst.port, []).replace(/\r\n\r\n$/, `\r\n${many.join('\r\n')}\r\n\r\n`), 5000, headersDone);
    expect(after.response).toMatch(/^HTTP\/1\.1 (101|400|431)/);
    await expectUnharmed();
  });

  test('ws: 200,000 one-byte fragments of one message end that connection; memory stays bounded', async () => {
    const frames: Buffer[] = [wsFrame(0x1, Buffer.from('4'), false)];
    for (let i = 1; i < 200_000; i++) frames.push(wsFrame(0x0, Buffer.from(' '), false));
    frames.push(wsFrame(0x0, Buffer.from(' '), true));
    const { response } = await rawTcp(inst.port, [upgradeRequest(inst.port), Buffer.concat(frames)], 20_000, (r) => /\u0088\u0002../.test(r));
    expect(response).toMatch(/^HTTP\/1\.1 101/);
    // The server closes with 1008 (too many fragments, ws >= 8.21) or 1009 (message too big) long before the end.
    expect(response).toMatch(/\u0088\u0002\u0003[\u00f0\u00f1]/);
    await expectUnharmed();
  });

  test('ws: invalid UTF-8 in a text frame closes that connection with 1007', async () => {
    for (const bytes of [[0xff, 0xfe, 0xfd], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x34, 0x32, 0xf8, 0x88, 0x80, 0x80, 0x80]]) {
      const { response } = await rawTcp(inst.port, [upgradeRequest(inst.port), wsFrame(0x1, Buffer.from(bytes))], 5000, (r) => r.includes('\u0088\u0002'));
      expect(response).toMatch(/^HTTP\/1\.1 101/);
      // The close frame the server sends: 0x88, length, then the 1007 status code (0x03 0xEF).
      expect(response).toContain('\u0088\u0002\u0003\u00ef');
    }
    await expectUnharmed();
  });

  test('socket.io: 42["error","x"] is answered INVALID_PAYLOAD; the other reserved names close that connection', async () => {
    const c = await joinedRaw();
    c.send('42["error","x"]');
    c.send('421["error","x"]');
    expectError((await rawAck(c, 1)).error, 'INVALID_PAYLOAD');
    await c.waitFrame((f) => f.startsWith('42["error",{"code":"INVALID_PAYLOAD"'), 'the error event for the ack-less send');
    expect(c.isOpen()).toBe(true);
    c.ws.terminate();
    for (const name of ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']) {
      const r = await joinedRaw();
      r.send(`421["${name}","x"]`);
      await r.closed;
    }
    await expectUnharmed();
  });

  test('socket.io-parser: malformed packets such as 2[{"toString":"foo"}] close that connection only', async () => {
    for (const frame of ['2[{"toString":"foo"}]', '42[{"toString":"foo"}]', '42[{"__proto__":"foo"}]', '43[{"toString":"foo"}]', '40{"toString":"foo"', '41{}', '4[]', '42[]', '42[1]', '42[null]']) {
      const c = await joinedRaw();
      c.send(frame);
      await Promise.race([c.closed, new Promise((r) => setTimeout(r, 300))]);
      c.ws.terminate();
    }
    await expectUnharmed();
  });
});
