/**
 * Identity rules (issue 13, items 9 and 10): the server's user id `system` is reserved, and a
 * revocation wins over a `channels` grant in a token issued before it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from 'switchboard-client/protocol';
import { adminToken, createChannel, http, unique } from '../helpers/api.js';
import { call, closeAllClients, connect } from '../helpers/client.js';
import { useServer } from '../helpers/server.js';
import { token } from '../helpers/tokens.js';
import { sleep, waitFor } from '../helpers/ports.js';

const server = useServer();
afterEach(() => closeAllClients());

describe('the reserved user id "system"', () => {
  it('is refused at the handshake like an invalid token', async () => {
    const err = await connect(server.url, await token('system')).then(
      () => undefined,
      (e: Error & { data?: unknown }) => e,
    );
    expect(err?.message).toBe('Invalid or expired token');
    expect(err?.data).toEqual({ code: ErrorCode.UNAUTHENTICATED });
    // Admin or not.
    await expect(connect(server.url, await token('system', { admin: true }))).rejects.toMatchObject({ message: 'Invalid or expired token' });
  });

  it('is refused at the REST API with 401 UNAUTHENTICATED', async () => {
    for (const t of [await token('system'), await token('system', { admin: true })]) {
      const r = await http(server.url, 'GET', '/api/channels', { token: t });
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe(ErrorCode.UNAUTHENTICATED);
      const publish = await http(server.url, 'POST', '/api/channels/general/messages', { token: t, body: { content: 'I am the server' } });
      expect(publish.status).toBe(401);
    }
  });

  it("server publishes carry it, and a user's send with the same clientMessageId is not taken for one", async () => {
    const ch = unique('sys');
    await createChannel(server.url, ch);
    const s = await connect(server.url, await token('sysop-fan'));
    await call(s, 'join_channel', ch);
    const published = await http(server.url, 'POST', `/api/channels/${ch}/messages`, { token: await adminToken(), body: { content: 'notice', clientMessageId: 'same' } });
    expect(published.body.message).toMatchObject({ userId: 'system', seq: 1 });
    const sent = await call(s, 'send_message', { channelId: ch, content: 'mine', clientMessageId: 'same' });
    expect(sent).toMatchObject({ ok: true, message: { userId: 'sysop-fan', seq: 2, content: 'mine' } });
    expect(sent.duplicate).toBeUndefined();
  });
});

describe('a revocation wins over a token grant issued before it', () => {
  const members = (ch: string, userId: string) => `/api/channels/${ch}/members/${userId}`;

  it('evicts the user; the old token is FORBIDDEN to rejoin and read; a token issued after the revocation reads again', async () => {
    const admin = await adminToken();
    const ch = unique('granted');
    await createChannel(server.url, ch, { private: true });
    const old = await token('dan', { channels: [ch] });
    const s = await connect(server.url, old);
    expect((await call(s, 'join_channel', ch)).ok).toBe(true);
    expect((await http(server.url, 'DELETE', members(ch, 'dan'), { token: admin })).status).toBe(204);
    await waitFor(async () => (await call(s, 'typing', { channelId: ch })).error?.code === ErrorCode.FORBIDDEN, 'dan evicted');
    expect((await call(s, 'join_channel', ch)).error?.code).toBe(ErrorCode.FORBIDDEN);
    const fresh = await connect(server.url, old);
    expect((await call(fresh, 'join_channel', ch)).error?.code).toBe(ErrorCode.FORBIDDEN);
    expect((await http(server.url, 'GET', `/api/channels/${ch}/messages`, { token: old })).status).toBe(403);
    // `iat` has whole seconds: a token of the revocation's own second counts as issued before it.
    await sleep(1100);
    const after = await token('dan', { channels: [ch] });
    expect((await http(server.url, 'GET', `/api/channels/${ch}/messages`, { token: after })).status).toBe(200);
  });

  it('an explicit re-grant (PUT members) lets the old token in again', async () => {
    const admin = await adminToken();
    const ch = unique('regrant');
    await createChannel(server.url, ch, { private: true });
    const old = await token('erin', { channels: [ch] });
    expect((await http(server.url, 'DELETE', members(ch, 'erin'), { token: admin })).status).toBe(204);
    const s = await connect(server.url, old);
    expect((await call(s, 'join_channel', ch)).error?.code).toBe(ErrorCode.FORBIDDEN);
    expect((await http(server.url, 'PUT', members(ch, 'erin'), { token: admin })).status).toBe(204);
    expect((await call(s, 'join_channel', ch)).ok).toBe(true);
  });
});
