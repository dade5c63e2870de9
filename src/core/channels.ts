import { ErrorCode, SwitchboardError } from 'switchboard-client/protocol';
import type { Principal } from '../ports/authenticator.js';
import { StoreError, type Channel, type MessageStore } from '../ports/message-store.js';
import type { Rooms } from '../ports/rooms.js';
import { requireAdmin, type ChannelAccess } from './access.js';
import { fromStore, storeFailure } from './errors.js';

export interface ChannelsDeps {
  store: Pick<MessageStore, 'listChannels' | 'getChannel' | 'createChannel' | 'addMember' | 'removeMember'>;
  rooms: Pick<Rooms, 'evict'>;
  access: ChannelAccess;
}

/** Most channels granted by a token that a listing looks up one by one. */
const GRANTED_LOOKUPS = 100;

/** The channel directory and its administration: listing, creating, granting and revoking access. */
export class Channels {
  constructor(private readonly deps: ChannelsDeps) {}

  /** Channels the principal may join: public ones, granted ones, and all for admins; sorted by id. */
  async list(principal: Principal): Promise<Channel[]> {
    const { store } = this.deps;
    const channels = await fromStore(store.listChannels(principal.isAdmin ? undefined : principal.userId));
    if (principal.isAdmin || principal.channels.length === 0) return channels;
    const known = new Set(channels.map((c) => c.id));
    const unknown = principal.channels.filter((id) => !known.has(id)).slice(0, GRANTED_LOOKUPS);
    const granted = await fromStore(Promise.all(unknown.map((id) => store.getChannel(id))));
    return [...channels, ...granted.filter((c): c is Channel => c !== undefined)].sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Admin: creates a channel; CONFLICT when the id is taken. */
  async create(principal: Principal, input: { id: string; name?: string | undefined; private?: boolean | undefined }): Promise<Channel> {
    requireAdmin(principal);
    try {
      return await this.deps.store.createChannel({ id: input.id, name: input.name ?? input.id, isPrivate: input.private ?? false });
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'conflict') throw new SwitchboardError(ErrorCode.CONFLICT, `Channel ${input.id} already exists`);
      throw storeFailure(err);
    }
  }

  /** Admin: grants a user access to a private channel. */
  async grant(principal: Principal, channelId: string, userId: string): Promise<void> {
    await this.deps.access.forAdmin(principal, channelId);
    await fromStore(this.deps.store.addMember(channelId, userId));
  }

  /** Admin: revokes access; on a private channel the user's connections leave it on every instance. */
  async revoke(principal: Principal, channelId: string, userId: string): Promise<void> {
    const channel = await this.deps.access.forAdmin(principal, channelId);
    await fromStore(this.deps.store.removeMember(channelId, userId));
    if (channel.isPrivate) this.deps.rooms.evict(channelId, userId);
  }
}
