import { createPublicKey, type KeyObject } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { CHANNEL_ID_PATTERN } from 'switchboard-client/protocol';

/** A limit of `points` per `durationMs`, written `100/5s` in the environment. */
export interface RateSpec {
  points: number;
  durationMs: number;
}

export type RedisAdapterKind = 'sharded' | 'classic' | 'streams';

export interface JwtConfig {
  /** HS256 key (UTF-8 bytes of JWT_SECRET, ≥ 32 bytes). */
  secret: string | undefined;
  /** True when the secret was generated for development and kept in the data directory. */
  secretIsDev: boolean;
  /** RS256/ES256 public key from JWT_PUBLIC_KEY. */
  publicKey: KeyObject | undefined;
  publicKeyAlg: 'RS256' | 'ES256' | undefined;
  jwksUrl: URL | undefined;
  issuer: string | undefined;
  audience: string | undefined;
}

/** One validated, frozen object; nothing else in the server reads process.env. */
export interface Config {
  production: boolean;
  port: number;
  host: string;
  instanceId: string;
  databaseUrl: string;
  redisUrl: string | undefined;
  redisAdapter: RedisAdapterKind;
  /** Where SQLite and the development JWT secret live. */
  dataDir: string;
  jwt: JwtConfig;
  /** Exact origins; `dev-localhost` = any http(s) origin on localhost; `same-origin` = the Host header's. */
  allowedOrigins: readonly string[] | 'dev-localhost' | 'same-origin';
  /** Addresses of proxies whose X-Forwarded-For is believed (proxy-addr syntax: IPs, CIDRs, `loopback`). */
  trustProxy: readonly string[];
  pingIntervalMs: number;
  pingTimeoutMs: number;
  shutdownNoticeMs: number;
  shutdownTimeoutMs: number;
  maxMessageLength: number;
  maxFrameBytes: number;
  defaultChannels: readonly string[];
  logLevel: string;
  /** Serve the demo page at `/`. Default: on in development, off in production. */
  demo: boolean;
  /** How long a dead instance's presence outlives its last heartbeat (heartbeats every third of it). */
  presenceTtlMs: number;
  limits: {
    /** Messages per user (cluster-wide with Redis). */
    messages: RateSpec;
    /** Events of any kind per connection. */
    events: RateSpec;
    /** Handshakes per client IP. */
    handshakesPerIp: RateSpec;
    /** Simultaneous connections per user on one instance. */
    connectionsPerUser: number;
    /** Channels one socket may be joined to. */
    channelsPerSocket: number;
    /** Bytes queued towards one client before it is dropped as a slow consumer. */
    outgoingBytes: number;
    /** Packets queued towards one client before it is dropped as a slow consumer. */
    outgoingPackets: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const rate = z
  .string()
  .regex(/^\d+\/\d+(ms|s|m|h)$/, 'must look like 100/5s (points per duration; units ms, s, m, h)')
  .transform((v): RateSpec => {
    const [, points, amount, unit] = /^(\d+)\/(\d+)(ms|s|m|h)$/.exec(v)!;
    return { points: Number(points), durationMs: Number(amount) * UNITS[unit!]! };
  })
  .refine((r) => r.points >= 1 && r.durationMs >= 1, 'points and duration must be positive');

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const list = z
  .string()
  .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

/** The environment table: every variable the server reads, with its rule. Defaults live in loadConfig. */
const envSchema = z.object({
  NODE_ENV: z.string().optional(),
  PORT: int(0, 65535).optional(),
  HOST: z.string().min(1).optional(),
  INSTANCE_ID: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ . : -').optional(),
  DATABASE_URL: z
    .string()
    .refine((v) => /^sqlite:.+/.test(v) || /^postgres(ql)?:\/\/.+/.test(v), 'must be sqlite:<path> or postgres://…')
    .optional(),
  REDIS_URL: z.string().refine((v) => /^rediss?:\/\/.+/.test(v), 'must be redis://… or rediss://…').optional(),
  REDIS_ADAPTER: z.enum(['sharded', 'classic', 'streams']).optional(),
  DATA_DIR: z.string().min(1).optional(),
  JWT_SECRET: z
    .string()
    .refine((v) => Buffer.byteLength(v, 'utf8') >= 32, 'must be at least 32 bytes (UTF-8) long')
    .optional(),
  JWT_PUBLIC_KEY: z.string().optional(),
  JWKS_URL: z.string().url('must be an http(s) URL').optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  ALLOWED_ORIGIN: list
    .refine((l) => !l.includes('*'), "must list exact origins; '*' cannot be combined with credentials")
    .refine((l) => l.every((o) => /^https?:\/\/[^/\s]+$/.test(o)), 'must be a comma list of origins like https://chat.example.com')
    .optional(),
  TRUST_PROXY: list.optional(),
  PING_INTERVAL_MS: int(1000, 600_000).optional(),
  PING_TIMEOUT_MS: int(1000, 600_000).optional(),
  SHUTDOWN_NOTICE_MS: int(0, 600_000).optional(),
  SHUTDOWN_TIMEOUT_MS: int(1000, 3_600_000).optional(),
  MAX_MESSAGE_LENGTH: int(1, 100_000).optional(),
  MAX_FRAME_BYTES: int(1024, 100 * 1024 * 1024).optional(),
  DEFAULT_CHANNELS: list
    .refine((l) => l.every((c) => CHANNEL_ID_PATTERN.test(c)), 'channel ids are 1-64 characters of A-Z a-z 0-9 _ - . :')
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  DEMO: bool.optional(),
  PRESENCE_TTL_MS: int(1500, 30_000).optional(),
  RATE_LIMIT_MESSAGES: rate.optional(),
  RATE_LIMIT_EVENTS: rate.optional(),
  RATE_LIMIT_HANDSHAKES: rate.optional(),
  MAX_CONNECTIONS_PER_USER: int(1, 100_000).optional(),
  MAX_CHANNELS_PER_SOCKET: int(1, 100_000).optional(),
  MAX_OUTGOING_BYTES: int(65_536, 1024 * 1024 * 1024).optional(),
  MAX_OUTGOING_PACKETS: int(16, 10_000_000).optional(),
});

export const ENV_VARIABLES = Object.keys(envSchema.shape);

function parsePublicKey(pem: string): { key: KeyObject; alg: 'RS256' | 'ES256' } {
  let key: KeyObject;
  try {
    key = createPublicKey(pem.replace(/\\n/g, '\n'));
  } catch {
    throw new ConfigError('JWT_PUBLIC_KEY', 'is not a PEM public key (expected -----BEGIN PUBLIC KEY-----)');
  }
  if (key.asymmetricKeyType === 'rsa') return { key, alg: 'RS256' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return { key, alg: 'ES256' };
  throw new ConfigError('JWT_PUBLIC_KEY', 'must be an RSA key (RS256) or a P-256 EC key (ES256)');
}

/**
 * Validates the environment into a frozen Config. Throws ConfigError naming the first bad variable.
 * Pure: reads nothing but `env` (the development JWT secret is resolved by the app at start-up).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<Config> {
  // Empty strings count as unset, the way shells and compose files write "VAR=".
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(String(issue.path[0] ?? 'environment'), issue.message);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  const pk = e.JWT_PUBLIC_KEY ? parsePublicKey(e.JWT_PUBLIC_KEY) : undefined;
  if (production && !e.JWT_SECRET && !pk && !e.JWKS_URL) {
    throw new ConfigError(
      'JWT_SECRET',
      'NODE_ENV=production needs JWT configuration: set JWT_SECRET (HS256, ≥ 32 bytes), JWT_PUBLIC_KEY (PEM) or JWKS_URL',
    );
  }
  const shutdownNoticeMs = e.SHUTDOWN_NOTICE_MS ?? 2000;
  const shutdownTimeoutMs = e.SHUTDOWN_TIMEOUT_MS ?? 30000;
  if (shutdownNoticeMs >= shutdownTimeoutMs) {
    throw new ConfigError('SHUTDOWN_NOTICE_MS', `must be below SHUTDOWN_TIMEOUT_MS (${shutdownTimeoutMs})`);
  }
  const pingIntervalMs = e.PING_INTERVAL_MS ?? 10000;
  const dataDir = e.DATA_DIR ?? './data';

  const config: Config = {
    production,
    port: e.PORT ?? 3000,
    host: e.HOST ?? '0.0.0.0',
    instanceId: e.INSTANCE_ID ?? `${hostname()}-${process.pid}`,
    databaseUrl: e.DATABASE_URL ?? `sqlite:${dataDir}/switchboard.db`,
    redisUrl: e.REDIS_URL,
    redisAdapter: e.REDIS_ADAPTER ?? 'sharded',
    dataDir,
    jwt: Object.freeze({
      secret: e.JWT_SECRET,
      secretIsDev: false,
      publicKey: pk?.key,
      publicKeyAlg: pk?.alg,
      jwksUrl: e.JWKS_URL ? new URL(e.JWKS_URL) : undefined,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
    }),
    allowedOrigins: e.ALLOWED_ORIGIN ? Object.freeze(e.ALLOWED_ORIGIN) : production ? 'same-origin' : 'dev-localhost',
    trustProxy: Object.freeze(e.TRUST_PROXY ?? []),
    pingIntervalMs,
    pingTimeoutMs: e.PING_TIMEOUT_MS ?? 20000,
    shutdownNoticeMs,
    shutdownTimeoutMs,
    maxMessageLength: e.MAX_MESSAGE_LENGTH ?? 4000,
    maxFrameBytes: e.MAX_FRAME_BYTES ?? 65536,
    defaultChannels: Object.freeze(e.DEFAULT_CHANNELS ?? ['general', 'random']),
    logLevel: e.LOG_LEVEL ?? 'info',
    demo: e.DEMO ?? !production,
    presenceTtlMs: e.PRESENCE_TTL_MS ?? 15_000,
    limits: Object.freeze({
      messages: e.RATE_LIMIT_MESSAGES ?? { points: 100, durationMs: 10_000 },
      events: e.RATE_LIMIT_EVENTS ?? { points: 300, durationMs: 10_000 },
      handshakesPerIp: e.RATE_LIMIT_HANDSHAKES ?? { points: 120, durationMs: 60_000 },
      connectionsPerUser: e.MAX_CONNECTIONS_PER_USER ?? 50,
      channelsPerSocket: e.MAX_CHANNELS_PER_SOCKET ?? 200,
      outgoingBytes: e.MAX_OUTGOING_BYTES ?? 16 * 1024 * 1024,
      outgoingPackets: e.MAX_OUTGOING_PACKETS ?? 10_000,
    }),
  };
  return Object.freeze(config);
}

/** A copy of `config` with the development secret filled in. */
export function withDevSecret(config: Readonly<Config>, secret: string): Readonly<Config> {
  return Object.freeze({ ...config, jwt: Object.freeze({ ...config.jwt, secret, secretIsDev: true }) });
}

export const hasJwtConfig = (c: Config): boolean => Boolean(c.jwt.secret || c.jwt.publicKey || c.jwt.jwksUrl);
