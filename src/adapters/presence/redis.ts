import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { PresenceUser } from 'switchboard-client/protocol';
import type { Presence } from '../../ports/presence.js';

/** The slice of ioredis this adapter is handed. */
export type PresenceRedisClient = Pick<Redis, 'set' | 'del' | 'defineCommand' | 'on' | 'off' | 'pipeline'>;

type PresencePipeline = {
  set(key: string, value: string, px: 'PX', ms: number): void;
  del(key: string): void;
  presenceSet(hash: string, users: string, node: string, count: number, userId: string): void;
  exec(): Promise<[Error | null, unknown][] | null>;
};

/** The client once the adapter's scripts are defined on it. */
type PresenceRedis = PresenceRedisClient & {
  presenceDelta(hash: string, users: string, node: string, delta: number, userId: string, nodePrefix: string): Promise<number>;
  presenceSet(hash: string, users: string, node: string, count: number, userId: string): Promise<number>;
  presenceList(users: string, hashPrefix: string, nodePrefix: string): Promise<(string | number)[]>;
};

export interface RedisPresenceOptions {
  /** This instance's id; a random boot id is appended so a restarted instance never inherits old counts. */
  instanceId: string;
  /** Prefix of every key. @default "sb:" */
  keyPrefix?: string;
  /** How long an instance's share outlives its last heartbeat. @default 15000 */
  ttlMs?: number;
  /** Heartbeat period; keep it well under ttlMs. @default 5000 */
  heartbeatMs?: number;
  /** Whether Redis answers; while it does not, calls fail at once instead of after a timeout. */
  linkUp?: () => boolean;
  logger: Logger;
}

// Applies a delta to this node's count and returns the user's total over live nodes, dropping dead ones.
const DELTA = `
local c = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if c <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local all = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #all, 2 do
  if redis.call('EXISTS', ARGV[4] .. all[i]) == 1 then total = total + tonumber(all[i + 1])
  else redis.call('HDEL', KEYS[1], all[i]) end
end
if total > 0 then redis.call('SADD', KEYS[2], ARGV[3]) else redis.call('SREM', KEYS[2], ARGV[3]) end
return total`;

// Sets this node's count (re-registration after Redis lost its data).
const SET = `
if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]); redis.call('SADD', KEYS[2], ARGV[3])
else redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1`;

// Lists users with their connection totals over live nodes.
const LIST = `
local users = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, u in ipairs(users) do
  local all = redis.call('HGETALL', ARGV[1] .. u)
  local total = 0
  for i = 1, #all, 2 do
    if redis.call('EXISTS', ARGV[2] .. all[i]) == 1 then total = total + tonumber(all[i + 1]) end
  end
  if total > 0 then table.insert(out, u); table.insert(out, total) else redis.call('SREM', KEYS[1], u) end
end
return out`;

/**
 * Cluster-wide presence in Redis. Each instance keeps its own counts in a hash field named after it
 * and proves it is alive with a key that expires `ttlMs` after its last heartbeat; counts of an
 * instance whose key expired are ignored and cleaned up. A local mirror holds what the calls said:
 * after a call failed, or a reconnect (Redis may have restarted empty), the instance writes the mirror
 * again under a new name and retires the old one, so Redis holds exactly the mirror.
 */
export class RedisPresence implements Presence {
  private readonly redis: PresenceRedis;
  private readonly instanceId: string;
  private node: string;
  /** A call failed: Redis may not hold what the mirror says. */
  private stale = false;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly log: Logger;
  private readonly local = new Map<string, Map<string, number>>();
  private readonly timer: NodeJS.Timeout;
  private readonly linkUp: () => boolean;
  private readonly onReady = () => void this.rewrite();

  constructor(redis: PresenceRedisClient, options: RedisPresenceOptions) {
    this.prefix = options.keyPrefix ?? 'sb:';
    this.instanceId = options.instanceId;
    this.node = this.newNode();
    this.ttlMs = options.ttlMs ?? 15_000;
    this.log = options.logger;
    this.linkUp = options.linkUp ?? (() => true);
    redis.defineCommand('presenceDelta', { numberOfKeys: 2, lua: DELTA });
    redis.defineCommand('presenceSet', { numberOfKeys: 2, lua: SET });
    redis.defineCommand('presenceList', { numberOfKeys: 1, lua: LIST });
    this.redis = redis as PresenceRedis;
    this.timer = setInterval(() => void this.tick(), options.heartbeatMs ?? 5000);
    this.timer.unref();
    redis.on('ready', this.onReady);
  }

  private newNode(): string {
    return `${this.instanceId}#${randomBytes(4).toString('hex')}`;
  }
  private nodeKey(node = this.node) {
    return `${this.prefix}node:${node}`;
  }
  private usersKey(channelId: string) {
    return `${this.prefix}p:{${channelId}}:users`;
  }
  private hashPrefix(channelId: string) {
    return `${this.prefix}p:{${channelId}}:u:`;
  }

  async start(): Promise<void> {
    await this.heartbeat();
  }

  /** Marks this instance alive; resolves false when Redis did not answer. */
  private async heartbeat(): Promise<boolean> {
    try {
      await this.redis.set(this.nodeKey(), '1', 'PX', this.ttlMs);
      return true;
    } catch (err) {
      this.log.debug({ reason: (err as Error).message }, 'presence heartbeat failed');
      return false;
    }
  }

  private async tick(): Promise<void> {
    if ((await this.heartbeat()) && this.stale) await this.rewrite();
  }

  /**
   * Writes the mirror under a new node name, then retires the old name, whose fields are then
   * ignored and cleaned up like a dead instance's. Others may count this instance twice for the
   * moment in between, never not at all.
   */
  private async rewrite(): Promise<void> {
    const retired = this.node;
    this.node = this.newNode();
    this.stale = false;
    const pipe = this.redis.pipeline() as unknown as PresencePipeline;
    pipe.set(this.nodeKey(), '1', 'PX', this.ttlMs);
    for (const [channelId, users] of this.local) {
      for (const [userId, n] of users) pipe.presenceSet(this.hashPrefix(channelId) + userId, this.usersKey(channelId), this.node, n, userId);
    }
    pipe.del(this.nodeKey(retired));
    try {
      const failed = (await pipe.exec())?.find(([err]) => err)?.[0];
      if (failed) throw failed;
    } catch (err) {
      this.stale = true;
      this.log.warn({ reason: (err as Error).message }, 'could not write presence to Redis; retrying after the next heartbeat');
    }
  }

  private bump(channelId: string, userId: string, delta: number): void {
    let users = this.local.get(channelId);
    if (!users) this.local.set(channelId, (users = new Map()));
    const n = (users.get(userId) ?? 0) + delta;
    if (n > 0) users.set(userId, n);
    else {
      users.delete(userId);
      if (users.size === 0) this.local.delete(channelId);
    }
  }

  private requireLink(): void {
    if (!this.linkUp()) throw new Error('Redis link is down');
  }

  async add(channelId: string, userId: string): Promise<boolean> {
    return (await this.applyDelta(channelId, userId, 1)) === 1;
  }

  async remove(channelId: string, userId: string): Promise<boolean> {
    if (!this.local.get(channelId)?.has(userId)) return false;
    return (await this.applyDelta(channelId, userId, -1)) === 0;
  }

  /** Changes this instance's count of the user; resolves with the user's total over live instances. */
  private async applyDelta(channelId: string, userId: string, delta: 1 | -1): Promise<number> {
    this.bump(channelId, userId, delta);
    try {
      this.requireLink();
      const total = await this.redis.presenceDelta(
        this.hashPrefix(channelId) + userId, this.usersKey(channelId), this.node, delta, userId, `${this.prefix}node:`,
      );
      return Number(total);
    } catch (err) {
      this.stale = true;
      throw err;
    }
  }

  async list(channelId: string): Promise<PresenceUser[]> {
    this.requireLink();
    const flat = await this.redis.presenceList(this.usersKey(channelId), this.hashPrefix(channelId), `${this.prefix}node:`);
    const out: PresenceUser[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ userId: String(flat[i]), connections: Number(flat[i + 1]) });
    out.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
    return out;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.redis.off('ready', this.onReady);
    // Our share disappears with our liveness key; the hash fields are cleaned lazily by the scripts.
    await this.redis.del(this.nodeKey()).catch(() => undefined);
    this.local.clear();
  }
}
