/** Room names, in one place: a channel's members, and all sockets of one user. */
export const channelRoom = (channelId: string): string => `channel:${channelId}`;
export const userRoom = (userId: string): string => `user:${userId}`;
/**
 * The members of a channel that asked for batched `new_messages` frames (`auth.batch`). Always a
 * subset of the channel's room: a batch client is in both, a plain client only in `channelRoom`.
 */
export const batchRoom = (channelId: string): string => `batch:${channelId}`;
/** The rooms a socket enters to be a member of a channel. */
export const memberRooms = (channelId: string, batch: boolean): string[] =>
  batch ? [channelRoom(channelId), batchRoom(channelId)] : [channelRoom(channelId)];
export const CHANNEL_ROOM_PREFIX = 'channel:';
export const channelOfRoom = (room: string): string | undefined =>
  room.startsWith(CHANNEL_ROOM_PREFIX) ? room.slice(CHANNEL_ROOM_PREFIX.length) : undefined;
