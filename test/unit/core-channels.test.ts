import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode } from 'switchboard-client/protocol';
import { coreWorld, principal, settle, type CoreWorld } from './core-fakes.js';

let w: CoreWorld;
const root = principal('root', { admin: true });
beforeEach(async () => {
  w = await coreWorld();
  await w.chat.channels.create(root, { id: 'secret', private: true });
});
afterEach(() => w.close());

describe('revoke', () => {
  it('on a private channel, evicts the user’s connections; presence and user_left follow; the user can no longer join', async () => {
    await w.chat.channels.grant(root, 'secret', 'ann');
    const tab1 = w.connect('ann');
    const tab2 = w.connect('ann');
    await w.chat.membership.join(tab1, 'secret');
    await w.chat.membership.join(tab2, 'secret');
    await w.chat.channels.revoke(root, 'secret', 'ann');
    expect(w.rooms.evictions).toEqual([{ channelId: 'secret', userId: 'ann' }]);
    expect([w.rooms.isJoined(tab1.id, 'secret'), w.rooms.isJoined(tab2.id, 'secret')]).toEqual([false, false]);
    await settle();
    expect(w.broadcaster.of('user_left')).toMatchObject([{ channelId: 'secret', payload: { userId: 'ann' } }]);
    expect((await w.chat.membership.presence(root, 'secret')).users).toEqual([]);
    await expect(w.chat.membership.join(tab1, 'secret')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
  });

  it('on a public channel, removes the membership and evicts no one', async () => {
    await w.chat.channels.revoke(root, 'general', 'ann');
    expect(w.rooms.evictions).toEqual([]);
  });

  it('is for admins only, and NOT_FOUND for an unknown channel', async () => {
    await expect(w.chat.channels.revoke(principal('ann'), 'secret', 'bob')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    await expect(w.chat.channels.revoke(root, 'nowhere', 'bob')).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    expect(w.rooms.evictions).toEqual([]);
  });
});

describe('a revocation wins over a token grant issued before it', () => {
  const tokenOf = (issuedAt: number | undefined) => ({ ...principal('dan', { channels: ['secret'] }), issuedAt });

  it('the old token is FORBIDDEN after the revocation; a token issued after it works again', async () => {
    const before = tokenOf(Date.now() - 1000);
    const tab = w.connect(before);
    await w.chat.membership.join(tab, 'secret');
    await w.chat.channels.revoke(root, 'secret', 'dan');
    expect(w.rooms.isJoined(tab.id, 'secret')).toBe(false);
    await expect(w.chat.membership.join(tab, 'secret')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    await expect(w.chat.messaging.history(before, { channelId: 'secret' })).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    const revokedAt = (await w.store.revokedAt('secret', 'dan'))!;
    // `iat` has whole seconds: a token of the revocation's own second counts as issued before it.
    await expect(w.chat.membership.presence(tokenOf(revokedAt), 'secret')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    await expect(w.chat.membership.presence(tokenOf(undefined), 'secret')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    const after = tokenOf(revokedAt + 1000);
    expect((await w.chat.membership.join(w.connect(after), 'secret')).channelId).toBe('secret');
  });

  it('an explicit re-grant opens the channel to the old token again', async () => {
    const before = tokenOf(Date.now() - 1000);
    await w.chat.channels.revoke(root, 'secret', 'dan');
    await expect(w.chat.membership.join(w.connect(before), 'secret')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    await w.chat.channels.grant(root, 'secret', 'dan');
    expect((await w.chat.membership.join(w.connect(before), 'secret')).channelId).toBe('secret');
  });

  it('a token grant without any revocation stands, with or without iat', async () => {
    expect((await w.chat.membership.join(w.connect(tokenOf(undefined)), 'secret')).channelId).toBe('secret');
  });
});

describe('grant, list and create', () => {
  it('a grant opens the private channel to the user', async () => {
    const ann = w.connect('ann');
    await expect(w.chat.membership.join(ann, 'secret')).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
    await w.chat.channels.grant(root, 'secret', 'ann');
    await expect(w.chat.membership.join(ann, 'secret')).resolves.toMatchObject({ channelId: 'secret' });
  });

  it('lists the public channels, the granted and the member ones, sorted; an admin sees all', async () => {
    await w.chat.channels.create(root, { id: 'alpha', private: true });
    await w.chat.channels.grant(root, 'alpha', 'ann');
    const ids = async (p: ReturnType<typeof principal>) => (await w.chat.channels.list(p)).map((c) => c.id);
    expect(await ids(principal('ann'))).toEqual(['alpha', 'general', 'random']);
    expect(await ids(principal('bob', { channels: ['secret', 'nowhere'] }))).toEqual(['general', 'random', 'secret']);
    expect(await ids(root)).toEqual(['alpha', 'general', 'random', 'secret']);
  });

  it('create: CONFLICT when the id is taken, FORBIDDEN for a non-admin', async () => {
    await expect(w.chat.channels.create(root, { id: 'secret' })).rejects.toMatchObject({ code: ErrorCode.CONFLICT });
    await expect(w.chat.channels.create(principal('ann'), { id: 'mine' })).rejects.toMatchObject({ code: ErrorCode.FORBIDDEN });
  });
});
