import { createServer, type Server } from 'node:http';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.js';
import { AUTH_INVALID, AUTH_REQUIRED, ErrorCode } from 'switchboard-client/protocol';
import { createChannel, http, unique } from '../helpers/api.js';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { startServer, useServer, type TestServer } from '../helpers/server.js';
import { TEST_SECRET, token } from '../helpers/tokens.js';

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** Connects and expects a refusal; resolves with the connect_error. */
async function refused(url: string, t: string | undefined, opts: Parameters<typeof connect>[2] = {}): Promise<Error & { data?: unknown }> {
  const err = await connect(url, t, opts).then(
    (s) => {
      s.close();
      throw new Error('the connection was accepted');
    },
    (e: unknown) => e as Error & { data?: unknown },
  );
  return err;
}

/** The contract's refusal for anything wrong with a token. */
async function expectInvalid(url: string, t: string | undefined, opts: Parameters<typeof connect>[2] = {}): Promise<void> {
  const err = await refused(url, t, opts);
  expect(err.message).toBe(AUTH_INVALID);
  expect(err.data).toEqual({ code: ErrorCode.UNAUTHENTICATED });
}

async function signWith(key: KeyObject | Uint8Array, alg: string, claims: Record<string, unknown> = {}, sub = 'keyuser') {
  return new SignJWT(claims).setProtectedHeader({ alg }).setSubject(sub).setIssuedAt().setExpirationTime(now() + 600).sign(key);
}

describe('handshake with HS256 (JWT_SECRET)', () => {
  const server = useServer();

  it('a valid token in auth.token is accepted', async () => {
    const s = await connect(server.url, await token('alice'));
    expect(s.connected).toBe(true);
    expect((await call(s, 'join_channel', 'general')).ok).toBe(true);
  });

  it('no token: "Authentication required" with code UNAUTHENTICATED', async () => {
    const err = await refused(server.url, undefined);
    expect(err.message).toBe(AUTH_REQUIRED);
    expect(AUTH_REQUIRED).toBe('Authentication required');
    expect(err.data).toEqual({ code: ErrorCode.UNAUTHENTICATED });
    const empty = await refused(server.url, '');
    expect(empty.message).toBe('Authentication required');
  });

  it('a bad signature is refused', async () => {
    expect(AUTH_INVALID).toBe('Invalid or expired token');
    await expectInvalid(server.url, await token('alice', { secret: 'another-secret-that-is-long-enough-0123' }));
    const good = await token('alice');
    const [h, p, sig] = good.split('.');
    // Same header and signature, a payload that claims admin.
    const forged = `${h}.${b64url({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), role: 'admin' })}.${sig}`;
    await expectInvalid(server.url, forged);
  });

  it('an expired token is refused', async () => {
    await expectInvalid(server.url, await token('alice', { ttl: -60 }));
  });

  it('a token that is not yet valid (nbf in the future) is refused', async () => {
    const key = new TextEncoder().encode(TEST_SECRET);
    const early = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('early').setNotBefore(now() + 3600).setExpirationTime(now() + 7200).sign(key);
    await expectInvalid(server.url, early);
  });

  it('alg "none" is refused, whatever it claims', async () => {
    const payload = b64url({ sub: 'mallory', exp: now() + 3600, role: 'admin' });
    for (const alg of ['none', 'None', 'NONE']) {
      await expectInvalid(server.url, `${b64url({ alg, typ: 'JWT' })}.${payload}.`);
    }
  });

  it('malformed tokens and tokens without sub or exp are refused', async () => {
    const key = new TextEncoder().encode(TEST_SECRET);
    const noSub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now() + 600).sign(key);
    const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').sign(key);
    const emptySub = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('').setExpirationTime(now() + 600).sign(key);
    const badChannels = await new SignJWT({ channels: 'all' }).setProtectedHeader({ alg: 'HS256' }).setSubject('bob').setExpirationTime(now() + 600).sign(key);
    const hs512 = await new SignJWT({}).setProtectedHeader({ alg: 'HS512' }).setSubject('bob').setExpirationTime(now() + 600).sign(new TextEncoder().encode(TEST_SECRET.repeat(2)));
    for (const t of ['garbage', 'a.b.c', noSub, noExp, emptySub, badChannels, hs512]) await expectInvalid(server.url, t);
  });

  it('a token in the Authorization: Bearer header is accepted (polling and websocket)', async () => {
    const t = await token('header-user');
    const polling = await connect(server.url, undefined, { transports: ['polling'], extraHeaders: { authorization: `Bearer ${t}` } });
    expect((await call(polling, 'join_channel', 'general')).ok).toBe(true);
    const ws = await connect(server.url, undefined, { transports: ['websocket'], extraHeaders: { Authorization: `Bearer ${t}` } });
    expect((await call(ws, 'presence', { channelId: 'general' })).ok).toBe(true);
    // A bad token in the header is refused the same way; a header without "Bearer" is no token.
    await expectInvalid(server.url, undefined, { transports: ['polling'], extraHeaders: { authorization: `Bearer ${await token('x', { ttl: -60 })}` } });
    const notBearer = await refused(server.url, undefined, { transports: ['polling'], extraHeaders: { authorization: `Basic ${t}` } });
    expect(notBearer.message).toBe(AUTH_REQUIRED);
  });

  it('auth.token comes first: a bad auth.token is refused even with a good header', async () => {
    await expectInvalid(server.url, await token('x', { ttl: -60 }), { transports: ['polling'], extraHeaders: { authorization: `Bearer ${await token('x')}` } });
  });

  it('the token user is who sends: sub becomes the message userId', async () => {
    const s = await connect(server.url, await token('sub-user'));
    await call(s, 'join_channel', 'general');
    const ack = await call(s, 'send_message', { channelId: 'general', content: 'who am i', clientMessageId: unique('w') });
    expect(ack.message.userId).toBe('sub-user');
  });
});

describe('private channels', () => {
  const server = useServer();

  it('the JWT channels claim grants exactly the channels it names', async () => {
    const a = unique('claim-a');
    const b = unique('claim-b');
    await createChannel(server.url, a, { private: true });
    await createChannel(server.url, b, { private: true });
    const s = await connect(server.url, await token(unique('claimer'), { channels: [a] }));
    expect((await call(s, 'join_channel', a)).ok).toBe(true);
    expect(await call(s, 'join_channel', b)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect((await call(s, 'history', { channelId: a })).ok).toBe(true);
    expect(await call(s, 'history', { channelId: b })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });

  it('membership granted by an admin opens the channel; revoking closes it and removes the user from the room', async () => {
    const ch = unique('members');
    const userId = unique('member');
    await createChannel(server.url, ch, { private: true });
    const admin = await token('admin', { admin: true });
    const s = await connect(server.url, await token(userId));
    expect(await call(s, 'join_channel', ch)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });

    expect((await http(server.url, 'PUT', `/api/channels/${ch}/members/${userId}`, { token: admin })).status).toBe(204);
    expect((await call(s, 'join_channel', ch)).ok).toBe(true);
    expect((await call(s, 'send_message', { channelId: ch, content: 'in', clientMessageId: 'm1' })).ok).toBe(true);

    expect((await http(server.url, 'DELETE', `/api/channels/${ch}/members/${userId}`, { token: admin })).status).toBe(204);
    // Evicted from the room: sending needs a join again, and the join is refused.
    expect(await call(s, 'send_message', { channelId: ch, content: 'out', clientMessageId: 'm2' })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await call(s, 'join_channel', ch)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await call(s, 'history', { channelId: ch })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    // A new connection is refused too.
    const fresh = await connect(server.url, await token(userId));
    expect(await call(fresh, 'join_channel', ch)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
  });

  it('an admin token may join any private channel', async () => {
    const ch = unique('admin-only');
    await createChannel(server.url, ch, { private: true });
    const s = await connect(server.url, await token(unique('adm'), { admin: true }));
    expect((await call(s, 'join_channel', ch)).ok).toBe(true);
  });
});

describe('asymmetric keys', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  let rsServer: TestServer;
  let esServer: TestServer;
  let jwksServer: TestServer;
  let jwksHttp: Server;
  let jwksUrl: string;

  beforeAll(async () => {
    // Without JWT_SECRET (empty = unset): only the public key verifies.
    rsServer = await startServer({ JWT_SECRET: '', JWT_PUBLIC_KEY: rsaPem });
    esServer = await startServer({ JWT_SECRET: '', JWT_PUBLIC_KEY: ecPem });
    const jwk = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwksHttp = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwksHttp.listen(0, '127.0.0.1', () => r()));
    const port = (jwksHttp.address() as { port: number }).port;
    jwksUrl = `http://127.0.0.1:${port}/.well-known/jwks.json`;
    jwksServer = await startServer({ JWT_SECRET: '', JWKS_URL: jwksUrl });
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await rsServer?.close();
    await esServer?.close();
    await jwksServer?.close();
    await new Promise<void>((r) => (jwksHttp ? jwksHttp.close(() => r()) : r()));
  });

  it('RS256 with JWT_PUBLIC_KEY is accepted; the claims are read', async () => {
    const t = await signWith(rsa.privateKey, 'RS256', { role: 'admin' }, 'rs-user');
    const s = await connect(rsServer.url, t);
    await call(s, 'join_channel', 'general');
    const ack = await call(s, 'send_message', { channelId: 'general', content: 'rs', clientMessageId: 'rs1' });
    expect(ack.message.userId).toBe('rs-user');
  });

  it('ES256 with JWT_PUBLIC_KEY is accepted', async () => {
    const s = await connect(esServer.url, await signWith(ec.privateKey, 'ES256'));
    expect((await call(s, 'presence', { channelId: 'general' })).ok).toBe(true);
  });

  it('HS256 signed with the public key PEM as the secret is refused (no algorithm confusion)', async () => {
    await expectInvalid(rsServer.url, await signWith(new TextEncoder().encode(rsaPem), 'HS256'));
    await expectInvalid(esServer.url, await signWith(new TextEncoder().encode(ecPem), 'HS256'));
    await expectInvalid(jwksServer.url, await signWith(new TextEncoder().encode(rsaPem), 'HS256'));
  });

  it('a token of the wrong algorithm or key is refused', async () => {
    await expectInvalid(rsServer.url, await signWith(ec.privateKey, 'ES256'));
    await expectInvalid(esServer.url, await signWith(rsa.privateKey, 'RS256'));
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await expectInvalid(rsServer.url, await signWith(other.privateKey, 'RS256'));
    await expectInvalid(rsServer.url, await token('hs-user'));
    const payload = b64url({ sub: 'mallory', exp: now() + 3600 });
    await expectInvalid(rsServer.url, `${b64url({ alg: 'none' })}.${payload}.`);
  });

  it('JWKS_URL: a token signed by a key of the set is accepted, another key is refused', async () => {
    const t = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('jwks-user').setExpirationTime(now() + 600).sign(rsa.privateKey);
    const s = await connect(jwksServer.url, t);
    expect((await call(s, 'presence', { channelId: 'general' })).ok).toBe(true);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await expectInvalid(jwksServer.url, await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('x').setExpirationTime(now() + 600).sign(other.privateKey));
  });

  it('JWT_PUBLIC_KEY and JWKS_URL together: tokens of either are accepted, with or without kid', async () => {
    const both = await startServer({ JWT_SECRET: '', JWT_PUBLIC_KEY: ecPem, JWKS_URL: jwksUrl });
    try {
      const byPem = await signWith(ec.privateKey, 'ES256', {}, 'pem-user');
      const byJwks = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject('jwks-user').setExpirationTime(now() + 600).sign(rsa.privateKey);
      const byJwksNoKid = await signWith(rsa.privateKey, 'RS256', {}, 'jwks-nokid');
      for (const t of [byPem, byJwks, byJwksNoKid]) expect((await connect(both.url, t)).connected).toBe(true);
      // An RSA PEM key of its own beside the JWKS's RSA key: each token must find its key.
      const pemRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const pemRsaPem = pemRsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const rsPemServer = await startServer({ JWT_SECRET: '', JWT_PUBLIC_KEY: pemRsaPem, JWKS_URL: jwksUrl });
      try {
        const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
        expect((await connect(rsPemServer.url, await signWith(pemRsa.privateKey, 'RS256', {}, 'pem-rsa'))).connected).toBe(true);
        expect((await connect(rsPemServer.url, byJwks)).connected).toBe(true);
        expect((await connect(rsPemServer.url, byJwksNoKid)).connected).toBe(true);
        await expectInvalid(rsPemServer.url, await signWith(other.privateKey, 'RS256'));
      } finally {
        await rsPemServer.close();
      }
    } finally {
      closeAllClients();
      await both.close();
    }
  });

  it('an RS256 token is accepted by the admin API too', async () => {
    const t = await signWith(rsa.privateKey, 'RS256', { role: 'admin' }, 'rs-admin');
    const r = await http(rsServer.url, 'POST', '/api/channels', { token: t, body: { id: unique('rs') } });
    expect(r.status).toBe(201);
  });
});

describe('issuer and audience (JWT_ISSUER, JWT_AUDIENCE)', () => {
  const server = useServer({ JWT_ISSUER: 'https://id.example.test', JWT_AUDIENCE: 'switchboard' });

  it('the right issuer and audience are accepted', async () => {
    const s = await connect(server.url, await token('iss-user', { issuer: 'https://id.example.test', audience: 'switchboard' }));
    expect(s.connected).toBe(true);
  });

  it('a wrong or missing issuer is refused', async () => {
    await expectInvalid(server.url, await token('u', { issuer: 'https://evil.example.test', audience: 'switchboard' }));
    await expectInvalid(server.url, await token('u', { audience: 'switchboard' }));
  });

  it('a wrong or missing audience is refused', async () => {
    await expectInvalid(server.url, await token('u', { issuer: 'https://id.example.test', audience: 'another-app' }));
    await expectInvalid(server.url, await token('u', { issuer: 'https://id.example.test' }));
  });
});

describe('configuration errors stop start-up, naming the variable', () => {
  const cases: [string, Record<string, string>, string][] = [
    ['JWT_SECRET too short', { JWT_SECRET: 'short' }, 'JWT_SECRET'],
    ["ALLOWED_ORIGIN '*'", { ALLOWED_ORIGIN: '*' }, 'ALLOWED_ORIGIN'],
    ['SHUTDOWN_NOTICE_MS >= SHUTDOWN_TIMEOUT_MS', { SHUTDOWN_NOTICE_MS: '5000', SHUTDOWN_TIMEOUT_MS: '5000' }, 'SHUTDOWN_NOTICE_MS'],
    ['NODE_ENV=production without JWT configuration', { NODE_ENV: 'production', JWT_SECRET: '' }, 'JWT_SECRET'],
    ['JWT_PUBLIC_KEY not a PEM', { JWT_PUBLIC_KEY: 'not a key' }, 'JWT_PUBLIC_KEY'],
    ['MAX_FRAME_BYTES not a number', { MAX_FRAME_BYTES: 'lots' }, 'MAX_FRAME_BYTES'],
  ];
  it.each(cases)('%s', async (_name, env, variable) => {
    const err = await startServer(env).then(
      async (s) => {
        await s.close();
        throw new Error('the server started');
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as ConfigError).message).toContain(variable);
  });

  it('production names every way to configure JWT', async () => {
    const err = (await startServer({ NODE_ENV: 'production', JWT_SECRET: '' }).catch((e: unknown) => e)) as Error;
    for (const v of ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL']) expect(err.message).toContain(v);
  });
});

describe('ALLOWED_ORIGIN', () => {
  let server: TestServer;
  let dev: TestServer;
  beforeAll(async () => {
    server = await startServer({ ALLOWED_ORIGIN: 'https://chat.example.com,https://admin.example.com' });
    dev = await startServer();
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await server?.close();
    await dev?.close();
  });

  const withOrigin = (origin: string, transport: 'websocket' | 'polling') => ({ transports: [transport], extraHeaders: { origin } });

  it.each(['websocket', 'polling'] as const)('%s: a foreign Origin is refused; listed origins and no Origin are accepted', async (transport) => {
    const t = await token('origin-user');
    await refused(server.url, t, withOrigin('https://evil.example.com', transport));
    await refused(server.url, t, withOrigin('https://chat.example.com.evil.example', transport));
    await refused(server.url, t, withOrigin('http://localhost:3000', transport));
    for (const ok of ['https://chat.example.com', 'https://admin.example.com']) {
      const s = await connect(server.url, t, withOrigin(ok, transport));
      expect((await call(s, 'presence', { channelId: 'general' })).ok).toBe(true);
    }
    const noOrigin = await connect(server.url, t, { transports: [transport] });
    expect(noOrigin.connected).toBe(true);
  });

  it('a raw WebSocket upgrade with a foreign Origin is refused before any Socket.IO session', async () => {
    const upgrade = (origin?: string) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`${server.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`, origin ? { headers: { origin } } : {});
        ws.once('open', () => {
          ws.close();
          resolve('open');
        });
        ws.once('unexpected-response', (_req, res) => {
          ws.terminate();
          resolve(`status ${res.statusCode}`);
        });
        ws.once('error', () => resolve('error'));
      });
    expect(await upgrade('https://evil.example.com')).not.toBe('open');
    expect(await upgrade('https://chat.example.com')).toBe('open');
    expect(await upgrade()).toBe('open');
  });

  it('a polling handshake with a foreign Origin is refused and gets no CORS headers', async () => {
    const res = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://evil.example.com' } });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const ok = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://chat.example.com' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://chat.example.com');
    expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
  });

  it('development default: localhost origins are accepted, others refused', async () => {
    const t = await token('dev-user');
    const s = await connect(dev.url, t, withOrigin('http://localhost:5173', 'websocket'));
    expect(s.connected).toBe(true);
    await refused(dev.url, t, withOrigin('https://evil.example.com', 'websocket'));
  });
});
