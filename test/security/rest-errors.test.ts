import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { call, connect } from '../helpers/client.js';
import { token } from '../helpers/tokens.js';
import { expectError, rawTcp, useServers } from './raw.js';

// Issue 13 item 8: every REST error is {error: {code, message}} with a status the contract lists,
// the router's own errors included, and no answer echoes the URL; every user id a token may carry
// works in the member paths.

const serve = useServers();
const CONTRACT_STATUSES = [400, 401, 403, 404, 409, 413, 429, 503];
const VAULT = 'vault';

let url: string;
let port: number;
let admin: string;
beforeAll(async () => {
  ({ url } = await serve({}));
  port = Number(new URL(url).port);
  admin = await token('root', { admin: true });
  const r = await fetch(`${url}/api/channels`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: VAULT, private: true }),
  });
  expect(r.status).toBe(201);
});

/** One request as written, path bytes untouched (fetch would normalise them): status and body. */
async function raw(method: string, path: string): Promise<{ status: number; body: string }> {
  const request = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
  const { response } = await rawTcp(port, Buffer.from(request, 'latin1'));
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1]);
  return { status, body: response.slice(response.indexOf('\r\n\r\n') + 4) };
}

/** A refusal in the contract's shape that does not repeat what the client sent. */
function expectContractError(r: { status: number; body: string }, sent: string): void {
  expect(CONTRACT_STATUSES, `${r.status} ${r.body}`).toContain(r.status);
  const body = JSON.parse(r.body) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expectError(body.error, body.error.code);
  if (sent.length >= 6) expect(r.body).not.toContain(sent);
  expect(r.body).not.toMatch(/FST_ERR|statusCode/);
}

describe('router errors in the contract shape', () => {
  // Bad escapes are 400 where the router meets them in a parameter, 404 where no route matches at all.
  const cases: [string, string, string, number[]][] = [
    ['a user id over the default param length (101 characters), unknown channel', 'PUT', `/api/channels/nope/members/${'u'.repeat(101)}`, [404]],
    ['a path parameter of 5,000 characters (GET: the demo page also matches)', 'GET', `/api/channels/${'c'.repeat(5000)}/messages`, [400, 404]],
    ['a member id of 5,000 characters', 'DELETE', `/api/channels/${VAULT}/members/${'m'.repeat(5000)}`, [400]],
    ['a truncated percent-escape in a parameter', 'PUT', `/api/channels/${VAULT}/members/bad%E0%A4%A`, [400]],
    ['a lone percent sign', 'GET', '/api/channels/%/messages', [400, 404]],
    ['an invalid escape in the route part', 'GET', '/api/%zzchannels', [400, 404]],
    ['an overlong UTF-8 escape', 'PUT', `/api/channels/${VAULT}/members/%C0%AFetc`, [400]],
    ['an unknown route with a long tail', 'GET', `/no/such/${'route'.repeat(200)}`, [404]],
  ];
  for (const [what, method, path, statuses] of cases) {
    test(`${what}: ${statuses.join(' or ')}`, async () => {
      const r = await raw(method, path);
      expect(statuses, r.body).toContain(r.status);
      expectContractError(r, path.slice(path.lastIndexOf('/') + 1));
    });
  }

  test('random path segments, raw or encoded, on every route: a contract status and shape, never an echo', async () => {
    const segment = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 200 }).map(encodeURIComponent),
      fc.stringMatching(/^[A-Za-z0-9%._~:@!$&'()*+,;=-]{1,400}$/),
      fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 60 }).map((bytes) => bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
    );
    const route = fc.constantFrom('/api/channels/{}/messages', '/api/channels/{}/members/bob', `/api/channels/${VAULT}/members/{}`, '/api/{}', '/{}');
    const method = fc.constantFrom('GET', 'PUT', 'DELETE', 'POST');
    await fc.assert(
      fc.asyncProperty(method, route, segment, async (m, r, seg) => {
        const res = await raw(m, r.replace('{}', seg));
        if (res.status < 300) return;
        expectContractError(res, seg);
      }),
      { numRuns: 200 },
    );
  });
});

describe('every user id a token may carry works in the member paths', () => {
  const ids = [
    ['128 ASCII characters', 'a'.repeat(128)],
    ['128 three-byte characters', '€'.repeat(128)],
    ['64 emoji (128 UTF-16 units)', '🙂'.repeat(64)],
    ['slashes, percent signs and query characters', 'a/b%20c?d#e&f=g'],
  ] as const;
  for (const [what, userId] of ids) {
    test(`${what}: granted, joins, revoked`, async () => {
      const path = `/api/channels/${VAULT}/members/${encodeURIComponent(userId)}`;
      const put = await fetch(`${url}${path}`, { method: 'PUT', headers: { authorization: `Bearer ${admin}` } });
      expect(put.status, await put.text()).toBe(204);
      const s = await connect(url, await token(userId));
      expect((await call(s, 'join_channel', VAULT)).ok).toBe(true);
      const del = await fetch(`${url}${path}`, { method: 'DELETE', headers: { authorization: `Bearer ${admin}` } });
      expect(del.status).toBe(204);
    });
  }

  test('129 characters is INVALID_PAYLOAD, like anywhere else', async () => {
    const r = await raw('PUT', `/api/channels/${VAULT}/members/${'a'.repeat(129)}`);
    expect(r.status).toBe(400);
    expectContractError(r, 'a'.repeat(129));
  });
});
