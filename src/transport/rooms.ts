/** Room names, in one place: a channel's members, and all sockets of one user. */
export const channelRoom = (channelId: string): string => `channel:${channelId}`;
export const userRoom = (userId: string): string => `user:${userId}`;
export const CHANNEL_ROOM_PREFIX = 'channel:';
export const channelOfRoom = (room: string): string | undefined =>
  room.startsWith(CHANNEL_ROOM_PREFIX) ? room.slice(CHANNEL_ROOM_PREFIX.length) : undefined;
