import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { waitFor } from '../helpers/ports.js';
import { expectServes, rawClient, useServers, type RawClient } from './raw.js';

// Issue 13 item 1: connect packets with attacker-chosen JWT headers, many on one Engine.IO session.
// Every metric label comes from a fixed set, and a session whose connect packets keep being refused
// is closed and draws on the per-address handshake budget.

const serve = useServers();

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** A JWT whose header names an algorithm nobody has heard of, different every time. */
const randomAlgToken = () => `${b64({ alg: `x${randomBytes(6).toString('hex')}` })}.${b64({ sub: 'mallory', exp: 9e9 })}.c2ln`;
const connectPacket = () => `40${JSON.stringify({ token: randomAlgToken() })}`;
const refusalsIn = (c: RawClient) => c.frames.filter((f) => f.startsWith('44'));

/** The series of the server's own metrics (`switchboard_*` sample lines) on /metrics. */
async function switchboardSeries(url: string): Promise<string[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith('switchboard_'));
}

/** Sends `count` refused connect packets at once on one raw session and waits until the server closes it. */
async function flood(url: string, count: number): Promise<RawClient> {
  const c = await rawClient(url, { connect: false });
  for (let i = 0; i < count && c.isOpen(); i++) c.send(connectPacket());
  await c.closed;
  return c;
}

/** Sends refused connect packets on one raw session, each once the previous was refused, until the server closes it. */
async function oneByOne(url: string): Promise<RawClient> {
  const c = await rawClient(url, { connect: false });
  for (let i = 1; c.isOpen(); i++) {
    c.send(connectPacket());
    await waitFor(() => refusalsIn(c).length >= i || !c.isOpen(), `refusal ${i}`);
  }
  return c;
}


describe('a flood of refused connect packets on one Engine.IO session', () => {
  test('the session is closed after a few; no metric gains a series; the server serves others', async () => {
    const { url } = await serve({ RATE_LIMIT_HANDSHAKES: '1000/1m' });
    // The first refusal of each kind creates its series; after that no flood may add one.
    await flood(url, 5);
    await oneByOne(url);
    const before = await switchboardSeries(url);

    const sessions = await Promise.all([...Array.from({ length: 5 }, () => flood(url, 400)), ...Array.from({ length: 5 }, () => oneByOne(url))]);
    for (const c of sessions) {
      const refused = refusalsIn(c);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.length).toBeLessThanOrEqual(3);
      // Nothing the client sent comes back: the refusal is the contract's fixed text.
      for (const f of refused) expect(f).not.toMatch(/"x[0-9a-f]{12}"/);
    }
    const after = await switchboardSeries(url);
    expect(after.length).toBe(before.length);
    expect(after.join('\n')).not.toMatch(/reason="[^"]*x[0-9a-f]{12}/);
    await expectServes(url);
  });

  test("a session's repeated connect packets take from the address's handshake budget", async () => {
    const { url } = await serve({ RATE_LIMIT_HANDSHAKES: '6/1m' });
    // One handshake point for the session, one each for its second and third connect packet, sent
    // one after the other, each once the previous was refused; the third refusal closes the session.
    expect(refusalsIn(await oneByOne(url))).toHaveLength(3);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  test('unknown event names and error codes never become label values', async () => {
    const { url } = await serve({});
    const c = await rawClient(url);
    for (let i = 0; i < 50; i++) c.send(`42${i}["evil-${randomBytes(4).toString('hex')}",{}]`);
    await c.waitFrame((f) => f.startsWith('4349['), 'the last ack');
    const lines = (await switchboardSeries(url)).filter((l) => l.startsWith('switchboard_event_errors_total'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/event="unknown",code="INVALID_PAYLOAD"/);
    c.ws.terminate();
  });
});
