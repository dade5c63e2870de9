import { ErrorCode, SwitchboardError } from 'switchboard-client/protocol';
import type { Principal } from '../ports/authenticator.js';
import type { Channel, MessageStore } from '../ports/message-store.js';
import { forbidden, fromStore } from './errors.js';

export type ChannelInfo = Pick<Channel, 'id' | 'isPrivate'>;

/** Most channels remembered; past it the memory starts again empty. */
const CACHE_LIMIT = 50_000;

export function requireAdmin(principal: Principal): void {
  if (!principal.isAdmin) throw forbidden();
}

/** Who may read and join which channel. */
export class ChannelAccess {
  /** Channels never change privacy and are never deleted, so a found channel can be remembered. */
  private readonly cache = new Map<string, ChannelInfo>();

  constructor(private readonly store: Pick<MessageStore, 'getChannel' | 'isMember' | 'revokedAt'>) {}

  async find(channelId: string): Promise<ChannelInfo | undefined> {
    const cached = this.cache.get(channelId);
    if (cached) return cached;
    const channel = await fromStore(this.store.getChannel(channelId));
    if (channel) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(channelId, { id: channel.id, isPrivate: channel.isPrivate });
    }
    return channel;
  }

  /**
   * Resolves when `principal` may read and join the channel: it is public, the user is an admin, the
   * token grants it and was issued after the user's last revocation there, or the user is a member.
   * FORBIDDEN otherwise, and when it does not exist.
   */
  async authorize(principal: Principal, channelId: string): Promise<void> {
    const channel = await this.find(channelId);
    if (!channel) throw forbidden();
    if (!channel.isPrivate || principal.isAdmin) return;
    if (principal.channels.includes(channelId) && (await this.grantStands(principal, channelId))) return;
    if (!(await fromStore(this.store.isMember(channelId, principal.userId)))) throw forbidden();
  }

  /**
   * A revocation wins over a token's grant issued before it. `iat` has whole seconds: a token of the
   * revocation's own second, or one without `iat`, counts as issued before.
   */
  private async grantStands(principal: Principal, channelId: string): Promise<boolean> {
    const revokedAt = await fromStore(this.store.revokedAt(channelId, principal.userId));
    return revokedAt === undefined || (principal.issuedAt !== undefined && principal.issuedAt > revokedAt);
  }

  /** The channel an admin acts on: FORBIDDEN for anyone else, NOT_FOUND when it does not exist. */
  async forAdmin(principal: Principal, channelId: string): Promise<ChannelInfo> {
    requireAdmin(principal);
    const channel = await this.find(channelId);
    if (!channel) throw new SwitchboardError(ErrorCode.NOT_FOUND, 'No such channel; create it first (POST /api/channels)');
    return channel;
  }
}
