import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Message, SocketData } from 'switchboard-client/protocol';
import { createRedisAdapter } from '../../src/adapters/redis/adapter.js';
import type { RedisLinks } from '../../src/adapters/redis/connection.js';
import type { ServerEvent } from '../../src/ports/broadcaster.js';
import { SocketIoBroadcaster } from '../../src/transport/broadcaster.js';
import { SocketIoRooms } from '../../src/transport/rooms.js';
import type { IoServer } from '../../src/transport/types.js';
import { closeAllClients, connect, type TestSocket } from '../helpers/client.js';
import { waitFor } from '../helpers/ports.js';
import { startRedis, type PrivateRedis } from '../helpers/redis.js';

/** One instance: a Socket.IO server with the Broadcaster and Rooms under test, and a switch for its broker link. */
interface Node {
  name: string;
  url: string;
  broadcaster: SocketIoBroadcaster;
  rooms: SocketIoRooms;
  /** What brokerUp() answers. */
  link: { up: boolean };
  /** Every departure onLeft reported: [connectionId, channelId]. */
  left: [string, string][];
  close(): Promise<void>;
}

/** A client with everything it received, in order. */
interface Client {
  id: string;
  socket: TestSocket;
  got: [ServerEvent, unknown][];
}

interface Backend {
  /** The instances: one for the in-memory adapter, two sharing a Redis for the cluster adapter. */
  nodes: Node[];
  /** Set where the link can be stalled for real (Redis: SIGSTOP). */
  stall?: { pause(): void; resume(): void };
  close(): Promise<void>;
}

async function startNode(name: string, links?: RedisLinks): Promise<Node> {
  const server = createServer();
  const io: IoServer = new Server(server, links ? { adapter: createRedisAdapter('sharded', links, `contract-${process.pid}`) } : {});
  // The handshake authentication is not under test: the client names its user.
  io.use((socket, next) => {
    const auth = socket.handshake.auth as { userId: string; batch?: boolean };
    const data: SocketData = { userId: auth.userId, name: undefined, isAdmin: false, grants: new Set(), expiresAt: Infinity, batch: auth.batch === true };
    socket.data = data;
    next();
  });
  const link = { up: true };
  const broadcaster = new SocketIoBroadcaster(io, { brokerUp: () => link.up });
  const rooms = new SocketIoRooms(io, { brokerUp: () => link.up });
  const left: [string, string][] = [];
  rooms.onLeft((connectionId, channelId) => left.push([connectionId, channelId]));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { name, url, broadcaster, rooms, link, left, close: () => new Promise<void>((resolve) => io.close(() => resolve())) };
}

async function memoryBackend(): Promise<Backend> {
  const node = await startNode('A');
  return { nodes: [node], close: () => node.close() };
}

/**
 * Links without a command timeout, connected before the adapter subscribes: while Redis is stalled a
 * publish waits for as long as the stall lasts.
 */
async function links(url: string): Promise<RedisLinks> {
  const pub = new Redis(url, { lazyConnect: true });
  const sub = new Redis(url, { lazyConnect: true });
  await Promise.all([pub.connect(), sub.connect()]);
  return {
    pub,
    sub,
    async close() {
      // QUIT after the replies still due (the adapter unsubscribes as its rooms empty).
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

async function redisBackend(redis: PrivateRedis): Promise<Backend> {
  const linksA = await links(redis.url);
  const linksB = await links(redis.url);
  const nodes = [await startNode('A', linksA), await startNode('B', linksB)];
  return {
    nodes,
    stall: redis,
    async close() {
      for (const n of nodes) await n.close();
      await Promise.all([linksA.close(), linksB.close()]);
    },
  };
}

async function client(node: Node, userId: string, options: { batch?: boolean } = {}): Promise<Client> {
  const socket = await connect(node.url, undefined, { auth: { userId, batch: options.batch === true } });
  const got: [ServerEvent, unknown][] = [];
  socket.onAny((event: ServerEvent, payload: unknown) => void got.push([event, payload]));
  return { id: socket.id!, socket, got };
}

const received = (c: Client, event: ServerEvent) => c.got.filter(([e]) => e === event).map(([, p]) => p);

let markers = 0;
/**
 * Sends a marker from `node` to everyone and waits until each client has it: a client that has the
 * marker has everything `node` broadcast before it (one publishing link, one Redis, in order).
 */
async function flushed(node: Node, clients: Client[]): Promise<void> {
  const reason = `marker-${++markers}`;
  node.broadcaster.toEveryone('resync', { reason });
  await waitFor(() => clients.every((c) => received(c, 'resync').some((r) => (r as { reason: string }).reason === reason)), `${reason} at every client`);
}

/**
 * Waits until broadcasts from every node to the channel reach every member: an instance subscribes to
 * a channel's broadcasts when the channel gets its first member there, a moment after the join.
 */
async function subscribed(nodes: Node[], channelId: string, members: Client[]): Promise<void> {
  const probe = { userId: 'probe', channelId, timestamp: '' };
  await waitFor(
    () => {
      for (const n of nodes) n.broadcaster.toChannel(channelId, 'user_left', probe);
      return members.every((c) => received(c, 'user_left').length >= nodes.length * 2);
    },
    `broadcasts to ${channelId} from every instance at every member`,
    10_000,
    100,
  );
  await Promise.all(nodes.map((n) => flushed(n, members)));
  for (const c of members) c.got.length = 0;
}

const message = (channelId: string, seq: number): Message => ({
  id: `m${seq}`,
  seq,
  channelId,
  userId: 'ann',
  content: `m${seq}`,
  timestamp: new Date(0).toISOString(),
  clientMessageId: `c${seq}`,
});

function broadcasterContract(label: string, open: () => Promise<Backend>) {
  describe(`Broadcaster and Rooms: ${label}`, () => {
    let backend: Backend;
    let A: Node;
    /** The other instance; the same one for a single instance. */
    let B: Node;
    let channel: string;
    let channels = 0;
    beforeAll(async () => {
      backend = await open();
      [A, B] = [backend.nodes[0]!, backend.nodes.at(-1)!];
    });
    beforeEach(() => {
      channel = `ch${++channels}`;
    });
    afterEach(() => {
      backend.stall?.resume();
      for (const n of backend.nodes) n.link.up = true;
      closeAllClients();
    });
    afterAll(() => backend?.close());

    /** ann on A and bob on B in the channel, carol on each instance in no channel. */
    async function room() {
      const ann = await client(A, 'ann');
      const bob = await client(B, 'bob');
      const outsiders = [await client(A, 'carol'), await client(B, 'carol')];
      await A.rooms.enter(ann.id, channel);
      await B.rooms.enter(bob.id, channel);
      await subscribed(backend.nodes, channel, [ann, bob]);
      return { ann, bob, outsiders, everyone: [ann, bob, ...outsiders] };
    }

    it('toChannel reaches every member on every instance, and no one else', async () => {
      const { ann, bob, outsiders, everyone } = await room();
      const notice = { userId: 'dan', channelId: channel, timestamp: new Date(0).toISOString() };
      A.broadcaster.toChannel(channel, 'user_joined', notice);
      await flushed(A, everyone);
      expect(received(ann, 'user_joined')).toEqual([notice]);
      expect(received(bob, 'user_joined')).toEqual([notice]);
      for (const o of outsiders) expect(received(o, 'user_joined')).toEqual([]);
    });

    it('toOthers reaches the channel on every instance except the sending connection, also the sender’s other connections', async () => {
      const { ann, bob, everyone } = await room();
      const annOther = await client(A, 'ann');
      await A.rooms.enter(annOther.id, channel);
      const typing = { userId: 'ann', channelId: channel };
      A.broadcaster.toOthers(ann.id, channel, 'user_typing', typing);
      await flushed(A, [...everyone, annOther]);
      expect(received(ann, 'user_typing')).toEqual([]);
      expect(received(annOther, 'user_typing')).toEqual([typing]);
      expect(received(bob, 'user_typing')).toEqual([typing]);
    });

    it('toConnection reaches that connection only', async () => {
      const { ann, everyone } = await room();
      A.broadcaster.toConnection(ann.id, 'left', { channelId: channel });
      await flushed(A, everyone);
      expect(everyone.map((c) => received(c, 'left'))).toEqual([[{ channelId: channel }], [], [], []]);
    });

    it('toEveryone reaches every connection on every instance', async () => {
      const { everyone } = await room();
      B.broadcaster.toEveryone('resync', { reason: 'broker-recovered' });
      await waitFor(() => everyone.every((c) => received(c, 'resync').some((r) => (r as { reason: string }).reason === 'broker-recovered')), 'resync at everyone');
    });

    it('new_messages of one turn keep their order: one new_messages frame for batch clients, new_message each for the others', async () => {
      const plain = await client(A, 'ann');
      const batched = await client(B, 'bob', { batch: true });
      await A.rooms.enter(plain.id, channel);
      await B.rooms.enter(batched.id, channel);
      await subscribed(backend.nodes, channel, [plain, batched]);
      const sent = [1, 2, 3].map((seq) => message(channel, seq));
      for (const m of sent) A.broadcaster.toChannel(channel, 'new_message', m);
      await waitFor(() => received(plain, 'new_message').length === 3 && received(batched, 'new_messages').length === 1, 'the three messages');
      await flushed(A, [plain, batched]);
      expect(received(plain, 'new_message')).toEqual(sent);
      expect(received(batched, 'new_messages')).toEqual([sent]);
      expect(received(batched, 'new_message')).toEqual([]);
    });

    it('evict takes every connection of the user out of the channel on every instance; each instance reports it', async () => {
      const { ann, bob } = await room();
      const annOnB = await client(B, 'ann');
      await B.rooms.enter(annOnB.id, channel);
      A.rooms.evict(channel, 'ann');
      await waitFor(() => !A.rooms.isJoined(ann.id, channel) && !B.rooms.isJoined(annOnB.id, channel), 'ann out on both instances');
      expect(A.left).toContainEqual([ann.id, channel]);
      expect(B.left).toContainEqual([annOnB.id, channel]);
      expect(B.rooms.isJoined(bob.id, channel)).toBe(true);
    });

    it('leave and disconnect are each reported once per channel; isJoined and joinedCount follow', async () => {
      const ann = await client(A, 'ann');
      await A.rooms.enter(ann.id, channel);
      await A.rooms.enter(ann.id, channel);
      await A.rooms.enter(ann.id, `${channel}-b`);
      expect([A.rooms.isJoined(ann.id, channel), A.rooms.joinedCount(ann.id)]).toEqual([true, 2]);
      await A.rooms.leave(ann.id, channel);
      expect([A.rooms.isJoined(ann.id, channel), A.rooms.joinedCount(ann.id)]).toEqual([false, 1]);
      ann.socket.disconnect();
      await waitFor(() => A.left.some(([id, ch]) => id === ann.id && ch === `${channel}-b`), 'the departure by disconnect');
      expect(A.left.filter(([id]) => id === ann.id)).toEqual([
        [ann.id, channel],
        [ann.id, `${channel}-b`],
      ]);
      expect(A.rooms.joinedCount(ann.id)).toBe(0);
      await A.rooms.enter(ann.id, channel);
      expect(A.rooms.isJoined(ann.id, channel)).toBe(false);
    });

    it('while brokerUp is false, local deliveries and evictions do not wait for the link', async () => {
      const { ann } = await room();
      const annOther = await client(A, 'ann');
      await A.rooms.enter(annOther.id, channel);
      A.link.up = false;
      backend.stall?.pause();
      // user_typing first: it is volatile, and would be dropped at a client still writing the previous event.
      A.broadcaster.toOthers(ann.id, channel, 'user_typing', { userId: 'ann', channelId: channel });
      A.broadcaster.toChannel(channel, 'user_joined', { userId: 'dan', channelId: channel, timestamp: new Date(0).toISOString() });
      A.broadcaster.toEveryone('resync', { reason: 'local' });
      A.rooms.evict(channel, 'ann');
      await waitFor(() => received(ann, 'user_joined').length === 1 && received(annOther, 'user_typing').length === 1, 'local delivery with the link down');
      await waitFor(() => received(ann, 'resync').length === 1, 'local resync with the link down');
      await waitFor(() => !A.rooms.isJoined(ann.id, channel) && !A.rooms.isJoined(annOther.id, channel), 'local eviction with the link down');
    });
  });
}

broadcasterContract('single instance (in-memory adapter)', memoryBackend);

let redis: PrivateRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(() => redis?.stop());
broadcasterContract('two instances over Redis (sharded adapter)', () => redisBackend(redis));
