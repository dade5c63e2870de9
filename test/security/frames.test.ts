import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';
import { expectError, expectServes, rawAck, rawClient, rawTcp, storedMessages } from './raw.js';

// Issue 7 item 3, transport half: frames no well-behaved client sends. A malformed frame closes that
// one connection (a transport rule); a well-formed event with a bad payload is answered per event.
// Either way the server goes on serving others and stores nothing.

let server: TestServer;
let url: string;
let port: number;
const CHANNEL = 'frames';

beforeAll(async () => {
  server = await startServer({ MAX_FRAME_BYTES: '65536', DEFAULT_CHANNELS: `general,${CHANNEL}` });
  url = server.url;
  port = Number(new URL(url).port);
});
afterEach(() => closeAllClients());
afterAll(async () => {
  closeAllClients();
  await server?.close();
});

const nothingStored = async () => expect(await storedMessages(url, CHANNEL)).toEqual([]);

/** A raw client joined to the test channel (ack id 0 used). */
async function joinedRaw() {
  const c = await rawClient(url);
  c.send(`420["join_channel","${CHANNEL}"]`);
  expect((await rawAck(c, 0)).ok).toBe(true);
  return c;
}

describe('malformed Engine.IO and Socket.IO frames over a raw WebSocket', () => {
  const closing = [
    ['an unknown Engine.IO packet type', '9hello'],
    ['an empty frame', ''],
    ['a Socket.IO packet of unknown type', '49["send_message"]'],
    ['truncated JSON', `42["send_message",{"channelId":"${CHANNEL}"`],
    ['an event whose name is not a string', '42[{"toString":"foo"},1]'],
    ['an event that is not an array', '42{"channelId":"x"}'],
    ['a non-numeric ack id', '42abc["send_message",{}]'],
  ] as const;
  for (const [what, frame] of closing) {
    test(`${what} closes that connection only`, async () => {
      const c = await joinedRaw();
      c.send(frame);
      await c.closed;
      await expectServes(url);
      await nothingStored();
    });
  }

  test('a namespace that does not exist is refused with a CONNECT_ERROR packet', async () => {
    const c = await joinedRaw();
    c.send('40/admin,');
    const refusal = await c.waitFrame((f) => f.startsWith('44/admin,'), 'the CONNECT_ERROR');
    expect(refusal).not.toMatch(/at \w+ \(|node_modules/);
    // The main namespace session is untouched.
    c.send(`421["history",{"channelId":"${CHANNEL}"}]`);
    expect((await rawAck(c, 1)).ok).toBe(true);
    c.ws.terminate();
  });

  test('an unknown event is answered INVALID_PAYLOAD and the connection stays', async () => {
    const c = await joinedRaw();
    c.send('421["drop_tables",{"all":true}]');
    expectError((await rawAck(c, 1)).error, 'INVALID_PAYLOAD');
    c.send('422["send_message"]');
    expectError((await rawAck(c, 2)).error, 'INVALID_PAYLOAD');
    c.send(`423["send_message",{"channelId":"${CHANNEL}","content":"a","clientMessageId":"b"},"extra"]`);
    expectError((await rawAck(c, 3)).error, 'INVALID_PAYLOAD');
    expect(c.isOpen()).toBe(true);
    await nothingStored();
    c.ws.terminate();
  });
});

describe('malformed Socket.IO packets close the connection (issue 13 item 11: the parser rule, kept)', () => {
  // [what, the text frame, binary frames after it]
  const packets: [string, string, Buffer[]][] = [
    ['an unterminated event array', '42[', []],
    ['an empty event array', '42[]', []],
    ['packet type 9 with a payload', '49[]', []],
    ['11 binary attachments (the parser allows 10)', `4511-["send_message",{"channelId":"${CHANNEL}","content":"x","clientMessageId":"many"}]`, Array.from({ length: 11 }, (_, i) => Buffer.from([i]))],
    ['a placeholder that names no attachment', `451-["send_message",{"channelId":"${CHANNEL}","content":{"_placeholder":true,"num":3},"clientMessageId":"ph"}]`, [Buffer.from('only one')]],
  ];
  for (const [what, frame, binaries] of packets) {
    test(`${what}: that connection closes; another socket and the server carry on`, async () => {
      const bystander = await connect(url, await token('bystander'));
      expect((await call(bystander, 'join_channel', CHANNEL)).ok).toBe(true);
      const c = await joinedRaw();
      c.send(frame);
      for (const b of binaries) if (c.isOpen()) c.send(b);
      await c.closed;
      expect(bystander.connected).toBe(true);
      expect((await call(bystander, 'history', { channelId: CHANNEL })).ok).toBe(true);
      await expectServes(url);
      await nothingStored();
    });
  }
});

describe('malformed frames over HTTP long-polling', () => {
  async function pollingSession(): Promise<string> {
    const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
    expect(r.status).toBe(200);
    const text = await r.text();
    return (JSON.parse(text.slice(1)) as { sid: string }).sid;
  }

  test('garbage, bad packet types and bad records in a POST end that session only', async () => {
    for (const body of ['\u0000\u0001\u0002', '9x', '4{]', '42["send_message",', '\u001e\u001e\u001e', 'b' + '!'.repeat(100)]) {
      const sid = await pollingSession();
      const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
      expect([200, 400]).toContain(r.status);
      expect(await r.text()).not.toMatch(/at \w+ \(|node_modules/);
    }
    const unknown = await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=not-a-session`, { method: 'POST', body: '40' });
    expect(unknown.status).toBe(400);
    await expectServes(url);
    await nothingStored();
  });

  test('a raw HTTP request with a broken request line or chunked framing is answered 400', async () => {
    const { response } = await rawTcp(port, 'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nzz\r\n\r\n');
    expect(response).toMatch(/^HTTP\/1\.1 400/);
    const { response: r2 } = await rawTcp(port, '\u0000\u0001GARBAGE /\r\n\r\n');
    expect(r2).toMatch(/^HTTP\/1\.1 400/);
    await expectServes(url);
  });
});

describe('binary attachments where text is expected', () => {
  test('a Buffer as content, channel id or clientMessageId is INVALID_PAYLOAD; nothing stored', async () => {
    const s = await connect(url, await token('binary'));
    expect((await call(s, 'join_channel', CHANNEL)).ok).toBe(true);
    const payloads = [
      { channelId: CHANNEL, content: Buffer.from('hello'), clientMessageId: 'b1' },
      { channelId: Buffer.from(CHANNEL), content: 'hello', clientMessageId: 'b2' },
      { channelId: CHANNEL, content: 'hello', clientMessageId: Buffer.from('b3') },
      Buffer.from(JSON.stringify({ channelId: CHANNEL, content: 'hello', clientMessageId: 'b4' })),
    ];
    for (const p of payloads) {
      const ack = await call(s, 'send_message', p);
      expect(ack.ok).toBe(false);
      expectError(ack.error, 'INVALID_PAYLOAD');
    }
    expectError((await call(s, 'join_channel', Buffer.from(CHANNEL))).error, 'INVALID_PAYLOAD');
    expect(s.connected).toBe(true);
    await nothingStored();
  });

  test('a raw binary event packet with a placeholder for content is INVALID_PAYLOAD', async () => {
    const c = await joinedRaw();
    c.send(`451-1["send_message",{"channelId":"${CHANNEL}","content":{"_placeholder":true,"num":0},"clientMessageId":"raw-bin"}]`);
    c.send(Buffer.from('binary content'));
    expectError((await rawAck(c, 1)).error, 'INVALID_PAYLOAD');
    // A binary frame nobody announced closes the connection (a protocol violation), nothing else.
    c.send(Buffer.from([1, 2, 3]));
    await c.closed;
    await nothingStored();
    await expectServes(url);
  });
});

describe('frames above maxHttpBufferSize (MAX_FRAME_BYTES)', () => {
  test('a WebSocket frame over the limit closes that connection (1009); nothing stored', async () => {
    const c = await joinedRaw();
    c.send(`42["send_message",{"channelId":"${CHANNEL}","content":"${'x'.repeat(70_000)}","clientMessageId":"huge"}]`);
    expect((await c.closed).code).toBe(1009);
    await nothingStored();
    await expectServes(url);
  });

  test('a polling POST over the limit is refused 413 and ends that session; nothing stored', async () => {
    const open = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
    const sid = (JSON.parse((await open.text()).slice(1)) as { sid: string }).sid;
    const r = await fetch(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: 'x'.repeat(200_000) });
    expect(r.status).toBe(413);
    await nothingStored();
    await expectServes(url);
  });

  test('a REST body over the limit is 413 PAYLOAD_TOO_LARGE', async () => {
    const r = await fetch(`${url}/api/channels/${CHANNEL}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token('root', { admin: true })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'y'.repeat(200_000) }),
    });
    expect(r.status).toBe(413);
    expectError(((await r.json()) as { error: unknown }).error, 'PAYLOAD_TOO_LARGE');
    await nothingStored();
  });
});

describe('thousands of HTTP headers', () => {
  test('a handshake with 5,000 headers is refused (431) without harm', async () => {
    const headers = Array.from({ length: 5000 }, (_, i) => `x-h${i}: ${i}`).join('\r\n');
    const { response } = await rawTcp(port, `GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n\r\n`);
    expect(response).toMatch(/^HTTP\/1\.1 431/);
    await expectServes(url);
  });

  test('1,900 short headers (under the size limit) are accepted or refused, never a crash', async () => {
    const headers = Array.from({ length: 1900 }, () => 'a: b').join('\r\n');
    const { response } = await rawTcp(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}\r\n\r\n`);
    expect(response).toMatch(/^HTTP\/1\.1 (200|400|431)/);
    await expectServes(url);
  });
});

describe('deeply nested and huge JSON', () => {
  test('10,000 levels of nesting in an event payload is INVALID_PAYLOAD (or closes the connection); the server lives', async () => {
    const c = await joinedRaw();
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    c.send(`421["send_message",{"channelId":"${CHANNEL}","content":${deep},"clientMessageId":"deep"}]`);
    const answer = await Promise.race([rawAck(c, 1), c.closed.then(() => 'closed' as const)]);
    if (answer !== 'closed') expectError(answer.error, 'INVALID_PAYLOAD');
    c.ws.terminate();
    await nothingStored();
    await expectServes(url);
  });

  test('a payload with 5,000 unknown keys (60 KB) is INVALID_PAYLOAD', async () => {
    const s = await connect(url, await token('wide'));
    expect((await call(s, 'join_channel', CHANNEL)).ok).toBe(true);
    const wide: Record<string, unknown> = { channelId: CHANNEL, content: 'x', clientMessageId: 'wide' };
    for (let i = 0; i < 5000; i++) wide[`k${i}`] = i;
    const ack = await call(s, 'send_message', wide);
    expectError(ack.error, 'INVALID_PAYLOAD');
    await nothingStored();
  });

  test('deeply nested and huge JSON bodies on the REST API are 400/413', async () => {
    const admin = await token('root', { admin: true });
    const post = (body: string) =>
      fetch(`${url}/api/channels/${CHANNEL}/messages`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body });
    const deep = await post(`{"content":${'['.repeat(20_000)}${']'.repeat(20_000)}}`);
    expect(deep.status).toBe(400);
    expectError(((await deep.json()) as { error: unknown }).error, 'INVALID_PAYLOAD');
    const huge = await post(`{"content":"x","pad":"${'p'.repeat(70_000)}"}`);
    expect(huge.status).toBe(413);
    await nothingStored();
    await expectServes(url);
  });
});

describe('__proto__ and constructor keys', () => {
  test('prototype keys in event payloads are INVALID_PAYLOAD and pollute nothing', async () => {
    const c = await joinedRaw();
    const frames = [
      `421["send_message",{"channelId":"${CHANNEL}","content":"x","clientMessageId":"p1","__proto__":{"isAdmin":true,"polluted":1}}]`,
      `422["send_message",{"channelId":"${CHANNEL}","content":"x","clientMessageId":"p2","constructor":{"prototype":{"polluted":1}}}]`,
      `423["join_channel",{"channelId":"${CHANNEL}","__proto__":{"sinceSeq":0}}]`,
      `424["history",{"channelId":"${CHANNEL}","constructor":{"prototype":{"limit":100000}}}]`,
    ];
    for (const [i, f] of frames.entries()) {
      c.send(f);
      expectError((await rawAck(c, i + 1)).error, 'INVALID_PAYLOAD');
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(({} as Record<string, unknown>)['isAdmin']).toBeUndefined();
    await nothingStored();
    c.ws.terminate();
  });

  test('channels named __proto__, constructor, toString, hasOwnProperty are ordinary unknown ids: FORBIDDEN', async () => {
    const s = await connect(url, await token('proto'));
    for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', 'valueOf']) {
      const ack = await call(s, 'join_channel', id);
      expect(ack.ok).toBe(false);
      expectError(ack.error, 'FORBIDDEN');
      expectError((await call(s, 'history', { channelId: id })).error, 'FORBIDDEN');
    }
    const r = await fetch(`${url}/api/channels/__proto__/messages`, { headers: { authorization: `Bearer ${await token('root', { admin: true })}` } });
    expect(r.status).toBe(403);
    await expectServes(url);
  });

  test('a REST body with __proto__ is refused and pollutes nothing', async () => {
    const r = await fetch(`${url}/api/channels`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token('root', { admin: true })}`, 'content-type': 'application/json' },
      body: '{"id":"protochan","__proto__":{"private":true,"polluted":1}}',
    });
    expect(r.status).toBe(400);
    expectError(((await r.json()) as { error: unknown }).error, 'INVALID_PAYLOAD');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});
