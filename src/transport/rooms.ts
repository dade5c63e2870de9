/** Room names, in one place: a channel's members, and all sockets of one user. */
export const channelRoom = (channelId: string): string => `channel:${channelId}`;
export const userRoom = (userId: string): string => `user:${userId}`;
/**
 * A channel's members split by frame kind, each socket in exactly one of the two besides
 * `channelRoom`: those that asked for batched `new_messages` frames (`auth.batch`), and the others.
 * A broadcast to a room nobody joined costs one publish and no work on the other instances (the
 * sharded adapter subscribes an instance to a room only while it has members there).
 */
export const batchRoom = (channelId: string): string => `batch:${channelId}`;
export const plainRoom = (channelId: string): string => `plain:${channelId}`;
/** The rooms a socket enters to be a member of a channel. */
export const memberRooms = (channelId: string, batch: boolean): string[] =>
  [channelRoom(channelId), batch ? batchRoom(channelId) : plainRoom(channelId)];
export const CHANNEL_ROOM_PREFIX = 'channel:';
export const channelOfRoom = (room: string): string | undefined =>
  room.startsWith(CHANNEL_ROOM_PREFIX) ? room.slice(CHANNEL_ROOM_PREFIX.length) : undefined;
