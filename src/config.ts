import type { KeyObject } from 'node:crypto';
import { ENV_TABLE, type DefaultContext, type Env, type EnvName } from './config/table.js';
import type { CrashAfterStoreSpec, RateSpec, RedisAdapterKind } from './config/rules.js';

export { ENV_TABLE, type EnvName, type EnvVariable } from './config/table.js';
export type { CrashAfterStoreSpec, RateSpec, RedisAdapterKind } from './config/rules.js';

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

/** One validated, frozen object: the server reads its environment only through loadConfig. */
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
  /** Time to receive a whole HTTP request (headers and body). */
  httpRequestTimeoutMs: number;
  /** Idle time after which a keep-alive HTTP connection is closed. */
  httpKeepAliveTimeoutMs: number;
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
    /** Simultaneous TCP connections of one client address. */
    httpConnectionsPerIp: number;
  };
  /** Test-only fault hook (SWITCHBOARD_FAULT_CRASH_AFTER_STORE); the CLI ignores it in production. */
  faultCrashAfterStore: CrashAfterStoreSpec | undefined;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const NAMES = Object.keys(ENV_TABLE) as EnvName[];

/** The set variables, each through its rule. Empty strings count as unset, the way shells and compose files write "VAR=". */
function parseSet(env: Record<string, string | undefined>): Partial<Env> {
  const set: Partial<Record<EnvName, unknown>> = {};
  for (const name of NAMES) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    const parsed = ENV_TABLE[name].rule.safeParse(text);
    if (!parsed.success) throw new ConfigError(name, parsed.error.issues[0]!.message);
    set[name] = parsed.data;
  }
  return set as Partial<Env>;
}

/** Every variable: its set value, else its default. */
function withDefaults(set: Partial<Env>): Env {
  const context: DefaultContext = { production: set.NODE_ENV === 'production', dataDir: set.DATA_DIR ?? ENV_TABLE.DATA_DIR.fallback() };
  return Object.fromEntries(NAMES.map((name) => [name, name in set ? set[name] : ENV_TABLE[name].fallback(context)])) as Env;
}

/** The rules across variables. */
function checkAcross(config: Config): void {
  requireJwtInProduction(config);
  if (config.shutdownNoticeMs >= config.shutdownTimeoutMs) {
    throw new ConfigError('SHUTDOWN_NOTICE_MS', `must be below SHUTDOWN_TIMEOUT_MS (${config.shutdownTimeoutMs})`);
  }
}

/** The Config the rest of src/ reads, field by field from the table's values (rules and defaults stay in the table). */
function toConfig(e: Env): Config {
  return {
    production: e.NODE_ENV === 'production',
    port: e.PORT,
    host: e.HOST,
    instanceId: e.INSTANCE_ID,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisAdapter: e.REDIS_ADAPTER,
    dataDir: e.DATA_DIR,
    jwt: Object.freeze({
      secret: e.JWT_SECRET,
      secretIsDev: false,
      publicKey: e.JWT_PUBLIC_KEY?.key,
      publicKeyAlg: e.JWT_PUBLIC_KEY?.alg,
      jwksUrl: e.JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
    }),
    allowedOrigins: typeof e.ALLOWED_ORIGIN === 'string' ? e.ALLOWED_ORIGIN : Object.freeze(e.ALLOWED_ORIGIN),
    trustProxy: Object.freeze(e.TRUST_PROXY ?? []),
    pingIntervalMs: e.PING_INTERVAL_MS,
    pingTimeoutMs: e.PING_TIMEOUT_MS,
    shutdownNoticeMs: e.SHUTDOWN_NOTICE_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    maxMessageLength: e.MAX_MESSAGE_LENGTH,
    maxFrameBytes: e.MAX_FRAME_BYTES,
    defaultChannels: Object.freeze(e.DEFAULT_CHANNELS),
    logLevel: e.LOG_LEVEL,
    demo: e.DEMO,
    presenceTtlMs: e.PRESENCE_TTL_MS,
    httpRequestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
    httpKeepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    limits: Object.freeze({
      messages: e.RATE_LIMIT_MESSAGES,
      events: e.RATE_LIMIT_EVENTS,
      handshakesPerIp: e.RATE_LIMIT_HANDSHAKES,
      connectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
      channelsPerSocket: e.MAX_CHANNELS_PER_SOCKET,
      outgoingBytes: e.MAX_OUTGOING_BYTES,
      outgoingPackets: e.MAX_OUTGOING_PACKETS,
      httpConnectionsPerIp: e.MAX_HTTP_CONNECTIONS_PER_IP,
    }),
    faultCrashAfterStore: e.SWITCHBOARD_FAULT_CRASH_AFTER_STORE,
  };
}

/**
 * Validates the environment against ENV_TABLE into a frozen Config. Throws ConfigError naming the
 * first bad variable. Pure: reads nothing but `env` (resolveJwt, in dev-secret.ts, fills in the
 * development JWT secret at start-up).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<Config> {
  const config = toConfig(withDefaults(parseSet(env)));
  checkAcross(config);
  return Object.freeze(config);
}

export const hasJwtConfig = (c: Config): boolean => Boolean(c.jwt.secret || c.jwt.publicKey || c.jwt.jwksUrl);

/** The production-JWT rule: production runs only on the operator's JWT configuration, never on a generated secret. */
export function requireJwtInProduction(config: Config): void {
  if (config.production && !hasJwtConfig(config)) {
    throw new ConfigError(
      'JWT_SECRET',
      'NODE_ENV=production needs JWT configuration: set JWT_SECRET (HS256, ≥ 32 bytes), JWT_PUBLIC_KEY (PEM) or JWKS_URL',
    );
  }
}

/** A copy of `config` with the development secret filled in. */
export function withDevSecret(config: Readonly<Config>, secret: string): Readonly<Config> {
  return Object.freeze({ ...config, jwt: Object.freeze({ ...config.jwt, secret, secretIsDev: true }) });
}
