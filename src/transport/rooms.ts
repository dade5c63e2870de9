import type { Rooms } from '../ports/rooms.js';
import type { IoServer } from './types.js';

const CHANNEL_ROOM_PREFIX = 'channel:';
/** Room names, in one place: a channel's members, and all sockets of one user. */
export const channelRoom = (channelId: string): string => `${CHANNEL_ROOM_PREFIX}${channelId}`;
const userRoom = (userId: string): string => `user:${userId}`;
/**
 * A channel's members split by frame kind, each socket in exactly one of the two besides
 * `channelRoom`: those that asked for batched `new_messages` frames (`auth.batch`), and the others.
 * A broadcast to a room nobody joined costs one publish and no work on the other instances (the
 * sharded adapter subscribes an instance to a room only while it has members there).
 */
export const batchRoom = (channelId: string): string => `batch:${channelId}`;
export const plainRoom = (channelId: string): string => `plain:${channelId}`;
/** The rooms a socket enters to be a member of a channel; `channelRoom` first. */
const memberRooms = (channelId: string, batch: boolean): string[] =>
  [channelRoom(channelId), batch ? batchRoom(channelId) : plainRoom(channelId)];
const channelOfRoom = (room: string): string | undefined =>
  room.startsWith(CHANNEL_ROOM_PREFIX) ? room.slice(CHANNEL_ROOM_PREFIX.length) : undefined;

export interface SocketIoRoomsOptions {
  /**
   * Whether the link to the other instances answers. While it does not, an eviction reaches this
   * instance only, at once: the adapter would otherwise hold it until its publish timed out.
   * @default () => true
   */
  brokerUp?: () => boolean;
}

/**
 * The Rooms port over Socket.IO rooms; connection ids are socket ids. Every socket is also put in its
 * user's room, so that an eviction can find all of a user's sockets on every instance. Build it
 * after the adapter is installed: departures are read from the adapter's `leave-room` events.
 */
export class SocketIoRooms implements Rooms {
  private readonly listeners: ((connectionId: string, channelId: string) => void)[] = [];
  private readonly brokerUp: () => boolean;

  constructor(
    private readonly io: IoServer,
    options: SocketIoRoomsOptions = {},
  ) {
    this.brokerUp = options.brokerUp ?? (() => true);
    io.on('connection', (socket) => void socket.join(userRoom(socket.data.userId)));
    io.of('/').adapter.on('leave-room', (room: string, socketId: string) => {
      const channelId = channelOfRoom(room);
      if (channelId !== undefined) for (const l of this.listeners) l(socketId, channelId);
    });
  }

  async enter(connectionId: string, channelId: string): Promise<void> {
    const socket = this.socket(connectionId);
    if (socket) await socket.join(memberRooms(channelId, socket.data.batch));
  }

  async leave(connectionId: string, channelId: string): Promise<void> {
    const socket = this.socket(connectionId);
    if (!socket) return;
    for (const room of memberRooms(channelId, socket.data.batch)) await socket.leave(room);
  }

  isJoined(connectionId: string, channelId: string): boolean {
    return this.socket(connectionId)?.rooms.has(channelRoom(channelId)) ?? false;
  }

  joinedCount(connectionId: string): number {
    let n = 0;
    for (const room of this.socket(connectionId)?.rooms ?? []) if (channelOfRoom(room) !== undefined) n++;
    return n;
  }

  evict(channelId: string, userId: string): void {
    const target = this.brokerUp() ? this.io : this.io.local;
    target.in(userRoom(userId)).socketsLeave([channelRoom(channelId), batchRoom(channelId), plainRoom(channelId)]);
  }

  onLeft(listener: (connectionId: string, channelId: string) => void): void {
    this.listeners.push(listener);
  }

  private socket(connectionId: string) {
    return this.io.of('/').sockets.get(connectionId);
  }
}
