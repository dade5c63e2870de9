import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { TEST_SECRET, token } from '../helpers/tokens.js';
import { expectError, rawAck, rawClient, storedMessages } from './raw.js';

// Issue 7 item 3 (JWTs) and item 5 (a token that expires mid-session). Every refusal is a
// connect_error "Invalid or expired token" with data.code UNAUTHENTICATED, and 401 on REST.

const AUDIENCE = 'switchboard';
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const hsKey = createSecretKey(Buffer.from(TEST_SECRET, 'utf8'));

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const trusted = rsa(); // JWT_PUBLIC_KEY
const jwksKey = rsa(); // served by the JWKS endpoint as kid "kb"
const attacker = rsa(); // nobody trusts it
const publicPem = trusted.publicKey.export({ type: 'spki', format: 'pem' }).toString();

let secretServer: TestServer; // JWT_SECRET + JWT_AUDIENCE
let pemServer: TestServer; // JWT_PUBLIC_KEY only (RS256) + JWT_AUDIENCE
let jwksServer: TestServer; // JWKS_URL only + JWT_AUDIENCE
let jwksHttp: Server;

beforeAll(async () => {
  const jwk = { ...(await exportJWK(jwksKey.publicKey)), kid: 'kb', alg: 'RS256', use: 'sig' };
  jwksHttp = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => jwksHttp.listen(0, '127.0.0.1', r));
  const jwksUrl = `http://127.0.0.1:${(jwksHttp.address() as { port: number }).port}/jwks.json`;
  secretServer = await startServer({ JWT_AUDIENCE: AUDIENCE });
  pemServer = await startServer({ JWT_SECRET: '', JWT_PUBLIC_KEY: publicPem, JWT_AUDIENCE: AUDIENCE });
  jwksServer = await startServer({ JWT_SECRET: '', JWKS_URL: jwksUrl, JWT_AUDIENCE: AUDIENCE });
});
afterEach(() => closeAllClients());
afterAll(async () => {
  closeAllClients();
  await Promise.all([secretServer?.close(), pemServer?.close(), jwksServer?.close()]);
  await new Promise((r) => jwksHttp?.close(r));
});

const claims = (extra: Record<string, unknown> = {}) => ({ sub: 'mallory', aud: AUDIENCE, exp: now() + 3600, role: 'admin', ...extra });
const sign = (alg: 'HS256' | 'RS256', key: KeyObject | Uint8Array, payload: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  new SignJWT(payload).setProtectedHeader({ alg, ...header }).sign(key);

/** The token is refused on the socket and on the REST API, with the contract's words and code only. */
async function expectRefused(server: TestServer, jwt: string): Promise<void> {
  const err = (await connect(server.url, jwt).then(
    () => undefined,
    (e: unknown) => e,
  )) as (Error & { data?: unknown }) | undefined;
  expect(err, 'the connection must be refused').toBeInstanceOf(Error);
  expect(err!.message).toBe('Invalid or expired token');
  expect(err!.data).toEqual({ code: 'UNAUTHENTICATED' });
  const r = await fetch(`${server.url}/api/channels`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'made-by-forged-token' }),
  });
  expect(r.status).toBe(401);
  expectError(((await r.json()) as { error: unknown }).error, 'UNAUTHENTICATED');
}

/** A valid token of the server's own kind is accepted: the refusals above are about the token, not the server. */
async function expectServesWith(server: TestServer, jwt: string): Promise<void> {
  const s = await connect(server.url, jwt);
  expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
  s.close();
}

describe('forged and unacceptable tokens', () => {
  test('alg "none" is refused (every server kind)', async () => {
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`;
    const noneCaps = `${b64({ alg: 'NONE' })}.${b64(claims())}.`;
    for (const server of [secretServer, pemServer, jwksServer]) {
      await expectRefused(server, unsigned);
      await expectRefused(server, noneCaps);
    }
    await expectServesWith(secretServer, await sign('HS256', hsKey, claims({ role: undefined })));
  });

  test('HS256 signed with the RS256 public key (algorithm confusion) is refused', async () => {
    const pemBytes = new TextEncoder().encode(publicPem);
    const derBytes = trusted.publicKey.export({ type: 'spki', format: 'der' });
    await expectRefused(pemServer, await sign('HS256', pemBytes, claims()));
    await expectRefused(pemServer, await sign('HS256', new Uint8Array(derBytes), claims()));
    await expectRefused(secretServer, await sign('HS256', pemBytes, claims()));
    await expectServesWith(pemServer, await sign('RS256', trusted.privateKey, claims({ role: undefined })));
  });

  test('a token without exp is refused', async () => {
    const { exp: _exp, ...noExp } = claims();
    await expectRefused(secretServer, await sign('HS256', hsKey, noExp));
    await expectRefused(pemServer, await sign('RS256', trusted.privateKey, noExp));
    await expectServesWith(secretServer, await sign('HS256', hsKey, claims({ role: undefined })));
  });

  test('a far-future nbf is refused', async () => {
    await expectRefused(secretServer, await sign('HS256', hsKey, claims({ nbf: now() + 10 * 365 * 86400 })));
    await expectRefused(pemServer, await sign('RS256', trusted.privateKey, claims({ nbf: now() + 3600 })));
    await expectServesWith(secretServer, await sign('HS256', hsKey, claims({ role: undefined })));
  });

  test('a foreign kid or a foreign key is refused (JWKS and public-key configurations)', async () => {
    // JWKS: an unknown kid, and the known kid on a token signed by another key.
    await expectRefused(jwksServer, await sign('RS256', attacker.privateKey, claims(), { kid: 'evil' }));
    await expectRefused(jwksServer, await sign('RS256', attacker.privateKey, claims(), { kid: 'kb' }));
    await expectRefused(jwksServer, await sign('RS256', attacker.privateKey, claims()));
    // A kid with a URL, a path or an injection in it is just an unknown kid.
    await expectRefused(jwksServer, await sign('RS256', attacker.privateKey, claims(), { kid: '../../etc/passwd', jku: 'http://127.0.0.1:1/evil.json' }));
    // Public key: the kid is irrelevant, the foreign signature is not.
    await expectRefused(pemServer, await sign('RS256', attacker.privateKey, claims(), { kid: 'kb' }));
    // The JWKS key works on the JWKS server only.
    await expectRefused(pemServer, await sign('RS256', jwksKey.privateKey, claims(), { kid: 'kb' }));
    await expectServesWith(jwksServer, await sign('RS256', jwksKey.privateKey, claims({ role: undefined }), { kid: 'kb' }));
  });

  test('a wrong or missing audience is refused', async () => {
    await expectRefused(secretServer, await sign('HS256', hsKey, claims({ aud: 'another-service' })));
    await expectRefused(secretServer, await sign('HS256', hsKey, claims({ aud: undefined })));
    await expectRefused(secretServer, await sign('HS256', hsKey, claims({ aud: ['another-service', 'evil'] })));
    await expectRefused(pemServer, await sign('RS256', trusted.privateKey, claims({ aud: 'another-service' })));
    await expectServesWith(secretServer, await sign('HS256', hsKey, claims({ role: undefined })));
  });

  test('expired, tampered and wrong-secret tokens are refused', async () => {
    await expectRefused(secretServer, await sign('HS256', hsKey, claims({ exp: now() - 60 })));
    const good = await sign('HS256', hsKey, claims({ role: undefined }));
    const [h, , sig] = good.split('.');
    await expectRefused(secretServer, `${h}.${b64(claims())}.${sig}`);
    await expectRefused(secretServer, await sign('HS256', createSecretKey(Buffer.from('another-secret-of-at-least-32-bytes!!')), claims()));
    await expectRefused(secretServer, 'not-a-jwt');
    await expectRefused(secretServer, `${'a'.repeat(5000)}.${'b'.repeat(5000)}.${'c'.repeat(5000)}`);
  });

  test('no token at all: "Authentication required", UNAUTHENTICATED', async () => {
    const err = (await connect(secretServer.url, undefined).catch((e: unknown) => e)) as Error & { data?: unknown };
    expect(err.message).toBe('Authentication required');
    expect(err.data).toEqual({ code: 'UNAUTHENTICATED' });
  });
});

describe('a token that expires mid-session (item 5)', () => {
  test('the connection is ended with UNAUTHENTICATED when exp passes; nothing sent after exp is stored', async () => {
    const { url } = secretServer;
    const exp = now() + 2;
    const jwt = await sign('HS256', hsKey, { sub: 'shortlived', aud: AUDIENCE, exp });
    const s = await connect(url, jwt);
    expect((await call(s, 'join_channel', 'random')).ok).toBe(true);
    const errors: { code: string; message: string }[] = [];
    s.on('error', (e) => errors.push(e));
    const reason = new Promise<string>((resolve) => s.once('disconnect', resolve));
    expect((await call(s, 'send_message', { channelId: 'random', content: 'before exp', clientMessageId: 'before' })).ok).toBe(true);

    // A raw connection with the same token keeps sending past exp.
    const raw = await rawClient(url, { token: jwt });
    raw.send('420["join_channel","random"]');
    expect((await rawAck(raw, 0)).ok).toBe(true);

    expect(await reason).toBe('io server disconnect');
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);
    await waitFor(() => errors.length > 0, 'the error event');
    expect(errors[0]).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(errors[0]!.message).toMatch(/expired/i);

    for (let i = 1; i <= 5 && raw.isOpen(); i++) {
      raw.send(`42${i}["send_message",{"channelId":"random","content":"after exp","clientMessageId":"after-${i}"}]`);
      await sleep(20);
    }
    await raw.closed;
    const stored = await storedMessages(url, 'random', await sign('HS256', hsKey, claims()));
    expect(stored.filter((m) => m.userId === 'shortlived').map((m) => m.clientMessageId)).toEqual(['before']);
    // A fresh token reconnects at once.
    await expectServesWith(secretServer, await sign('HS256', hsKey, { sub: 'shortlived', aud: AUDIENCE, exp: now() + 3600 }));
  });
});
