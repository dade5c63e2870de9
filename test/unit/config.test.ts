import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigError, demoOn, devFeaturesOn, ENV_TABLE, faultHookArmed, loadConfig, modeWarning, type Config, type EnvName } from '../../src/config.js';
import { resolveJwt } from '../../src/dev-secret.js';

// Random-looking: production refuses placeholders such as one character repeated or "change-me".
const SECRET = 'q7Vx2mN9pL4sT8wZ1cR6yB3hK5jD0fGa';
const RSA_PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

interface Sample {
  /** What the variable is set to. */
  value: string;
  /** Where it lands in the Config. */
  read: (c: Readonly<Config>) => unknown;
  expected: unknown;
}

const sample = (value: string, read: Sample['read'], expected: unknown): Sample => ({ value, read, expected });

/**
 * A value for every variable of the table, none of them its default, and all valid together (and
 * with any one left out): a variable added to the table without one here fails to typecheck.
 */
const SAMPLES: Record<EnvName, Sample> = {
  PORT: sample('8080', (c) => c.port, 8080),
  HOST: sample('::', (c) => c.host, '::'),
  INSTANCE_ID: sample('node-a', (c) => c.instanceId, 'node-a'),
  DATABASE_URL: sample('postgres://u@db:5432/chat', (c) => c.databaseUrl, 'postgres://u@db:5432/chat'),
  REDIS_URL: sample('redis://cache:6379', (c) => c.redisUrl, 'redis://cache:6379'),
  JWT_SECRET: sample(SECRET, (c) => c.jwt.secret, SECRET),
  JWT_PUBLIC_KEY: sample(RSA_PEM, (c) => [c.jwt.publicKeyAlg, c.jwt.publicKey?.asymmetricKeyType], ['RS256', 'rsa']),
  JWKS_URL: sample('https://id.example/jwks.json', (c) => c.jwt.jwksUrl?.href, 'https://id.example/jwks.json'),
  JWT_ISSUER: sample('https://id.example', (c) => c.jwt.issuer, 'https://id.example'),
  JWT_AUDIENCE: sample('chat', (c) => c.jwt.audience, 'chat'),
  ALLOWED_ORIGIN: sample('https://a.example, https://b.example:8443', (c) => c.allowedOrigins, ['https://a.example', 'https://b.example:8443']),
  PING_INTERVAL_MS: sample('5000', (c) => c.pingIntervalMs, 5000),
  PING_TIMEOUT_MS: sample('6000', (c) => c.pingTimeoutMs, 6000),
  SHUTDOWN_NOTICE_MS: sample('100', (c) => c.shutdownNoticeMs, 100),
  // Above the notice's default, so that leaving SHUTDOWN_NOTICE_MS out stays valid.
  SHUTDOWN_TIMEOUT_MS: sample('2500', (c) => c.shutdownTimeoutMs, 2500),
  MAX_MESSAGE_LENGTH: sample('10', (c) => c.maxMessageLength, 10),
  MAX_FRAME_BYTES: sample('2048', (c) => c.maxFrameBytes, 2048),
  DEFAULT_CHANNELS: sample('lobby, ops:alerts', (c) => c.defaultChannels, ['lobby', 'ops:alerts']),
  NODE_ENV: sample('production', (c) => c.production, true),
  LOG_LEVEL: sample('debug', (c) => c.logLevel, 'debug'),
  LOG_FORMAT: sample('pretty', (c) => c.logFormat, 'pretty'),
  DATA_DIR: sample('/tmp/sb-data', (c) => c.dataDir, '/tmp/sb-data'),
  REDIS_ADAPTER: sample('classic', (c) => c.redisAdapter, 'classic'),
  TRUST_PROXY: sample('loopback, 10.0.0.0/8', (c) => c.trustProxy, ['loopback', '10.0.0.0/8']),
  PRESENCE_TTL_MS: sample('3000', (c) => c.presenceTtlMs, 3000),
  DEMO: sample('true', (c) => c.demo, true),
  RATE_LIMIT_MESSAGES: sample('3/10s', (c) => c.limits.messages, { points: 3, durationMs: 10_000 }),
  RATE_LIMIT_EVENTS: sample('7/500ms', (c) => c.limits.events, { points: 7, durationMs: 500 }),
  RATE_LIMIT_HANDSHAKES: sample('9/2h', (c) => c.limits.handshakesPerIp, { points: 9, durationMs: 7_200_000 }),
  MAX_CONNECTIONS_PER_USER: sample('5', (c) => c.limits.connectionsPerUser, 5),
  MAX_CHANNELS_PER_SOCKET: sample('7', (c) => c.limits.channelsPerSocket, 7),
  MAX_OUTGOING_BYTES: sample('65536', (c) => c.limits.outgoingBytes, 65536),
  MAX_OUTGOING_PACKETS: sample('16', (c) => c.limits.outgoingPackets, 16),
  RATE_LIMIT_READS: sample('50/1s', (c) => c.limits.reads, { points: 50, durationMs: 1000 }),
  PRESENCE_MAX_USERS: sample('3', (c) => c.presenceMaxUsers, 3),
  PRESENCE_CACHE_MS: sample('0', (c) => c.presenceCacheMs, 0),
  PRESENCE_NOTICE_INTERVAL_MS: sample('250', (c) => c.presenceNoticeIntervalMs, 250),
  SQLITE_LOCK_TIMEOUT_MS: sample('200', (c) => c.sqliteLockTimeoutMs, 200),
  HTTP_REQUEST_TIMEOUT_MS: sample('4000', (c) => c.httpRequestTimeoutMs, 4000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: sample('5000', (c) => c.httpKeepAliveTimeoutMs, 5000),
  MAX_HTTP_CONNECTIONS_PER_IP: sample('12', (c) => c.limits.httpConnectionsPerIp, 12),
  SWITCHBOARD_FAULT_CRASH_AFTER_STORE: sample('nth:3', (c) => c.faultCrashAfterStore, { kind: 'nth', n: 3 }),
};

const SAMPLE_ENV: Record<string, string> = Object.fromEntries(Object.entries(SAMPLES).map(([name, s]) => [name, s.value]));

/** The ConfigError `run` throws (fails when it throws none). */
function configErrorOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`no ConfigError from ${run.toString()}`);
}

/** The ConfigError loadConfig throws for `env`. */
const configError = (env: Record<string, string>): ConfigError => configErrorOf(() => loadConfig(env));

describe('loadConfig', () => {
  it('applies the contract defaults with an empty environment', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      production: false,
      port: 3000,
      host: '127.0.0.1',
      databaseUrl: 'sqlite:./data/switchboard.db',
      redisUrl: undefined,
      pingIntervalMs: 10000,
      pingTimeoutMs: 20000,
      shutdownNoticeMs: 2000,
      shutdownTimeoutMs: 30000,
      maxMessageLength: 4000,
      maxFrameBytes: 65536,
      defaultChannels: ['general', 'random'],
      allowedOrigins: 'dev-localhost',
      logFormat: 'auto',
    });
    expect(c.instanceId).toBe(`${hostname()}-${process.pid}`);
    expect(c.jwt.secret).toBeUndefined();
  });

  it('is frozen', () => {
    const c = loadConfig({ JWT_SECRET: SECRET });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.jwt)).toBe(true);
    expect(Object.isFrozen(c.defaultChannels)).toBe(true);
    expect(() => {
      (c as { port: number }).port = 1;
    }).toThrow();
  });

  it('reads every variable of the table', () => {
    const all = loadConfig(SAMPLE_ENV);
    expect(all).toMatchObject({
      port: 8080,
      host: '::',
      instanceId: 'node-a',
      databaseUrl: 'postgres://u@db:5432/chat',
      redisUrl: 'redis://cache:6379',
      allowedOrigins: ['https://a.example', 'https://b.example:8443'],
      pingIntervalMs: 5000,
      pingTimeoutMs: 6000,
      shutdownNoticeMs: 100,
      shutdownTimeoutMs: 2500,
      maxMessageLength: 10,
      maxFrameBytes: 2048,
      defaultChannels: ['lobby', 'ops:alerts'],
    });
    expect(all.jwt).toMatchObject({ secret: SECRET, issuer: 'https://id.example', audience: 'chat' });
    expect(all.limits.messages).toEqual({ points: 3, durationMs: 10_000 });
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(ENV_TABLE).sort());
  });

  // Each variable reaches its Config field: set, the field holds its value; left out, it does not.
  it.each(Object.keys(ENV_TABLE) as EnvName[])('%s reaches the Config', (name) => {
    const sample = SAMPLES[name];
    expect(sample, `SAMPLES has no entry for ${name}`).toBeDefined();
    expect(sample.read(loadConfig(SAMPLE_ENV))).toEqual(sample.expected);
    const { [name]: _left, ...without } = SAMPLE_ENV;
    expect(sample.read(loadConfig(without))).not.toEqual(sample.expected);
  });

  it('DATABASE_URL defaults under DATA_DIR and accepts sqlite: and postgres(ql)://', () => {
    expect(loadConfig({ DATA_DIR: '/tmp/sb' }).databaseUrl).toBe('sqlite:/tmp/sb/switchboard.db');
    for (const url of ['sqlite::memory:', 'sqlite:/var/lib/sb.db', 'postgres://h/db', 'postgresql://u:p@h:5432/db']) {
      expect(loadConfig({ DATABASE_URL: url }).databaseUrl).toBe(url);
    }
  });

  it('empty values count as unset', () => {
    const c = loadConfig({ PORT: '', JWT_SECRET: '', ALLOWED_ORIGIN: '', REDIS_URL: '' });
    expect(c.port).toBe(3000);
    expect(c.jwt.secret).toBeUndefined();
    expect(c.redisUrl).toBeUndefined();
    expect(c.allowedOrigins).toBe('dev-localhost');
  });

  it('JWT_SECRET counts UTF-8 bytes: at least 32', () => {
    expect(loadConfig({ JWT_SECRET: 'é'.repeat(16) }).jwt.secret).toBe('é'.repeat(16));
    expect(configError({ JWT_SECRET: 'x'.repeat(31) }).variable).toBe('JWT_SECRET');
    expect(configError({ JWT_SECRET: `${'é'.repeat(15)}a` }).variable).toBe('JWT_SECRET');
  });

  it('JWT_PUBLIC_KEY: RSA is RS256, P-256 is ES256, anything else is refused', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(loadConfig({ JWT_PUBLIC_KEY: rsa }).jwt.publicKeyAlg).toBe('RS256');
    expect(loadConfig({ JWT_PUBLIC_KEY: p256 }).jwt.publicKeyAlg).toBe('ES256');
    // A PEM written on one line with literal \n, as env files often hold it.
    expect(loadConfig({ JWT_PUBLIC_KEY: rsa.replace(/\n/g, '\\n') }).jwt.publicKeyAlg).toBe('RS256');
    for (const bad of [p384, ed, 'not a key', SECRET]) expect(configError({ JWT_PUBLIC_KEY: bad }).variable).toBe('JWT_PUBLIC_KEY');
  });

  it('ALLOWED_ORIGIN: * is a start-up error; only exact origins pass', () => {
    for (const bad of ['*', 'https://a.example,*', 'a.example', 'https://a.example/', 'https://a.example/path', 'ftp://a.example']) {
      const err = configError({ ALLOWED_ORIGIN: bad });
      expect(err.variable).toBe('ALLOWED_ORIGIN');
      expect(err.message).toMatch(/^ALLOWED_ORIGIN: /);
    }
  });

  it('SHUTDOWN_NOTICE_MS must be below SHUTDOWN_TIMEOUT_MS', () => {
    expect(configError({ SHUTDOWN_NOTICE_MS: '30000' }).variable).toBe('SHUTDOWN_NOTICE_MS');
    expect(configError({ SHUTDOWN_NOTICE_MS: '5000', SHUTDOWN_TIMEOUT_MS: '4000' }).variable).toBe('SHUTDOWN_NOTICE_MS');
    expect(loadConfig({ SHUTDOWN_NOTICE_MS: '29999' }).shutdownNoticeMs).toBe(29999);
    expect(loadConfig({ SHUTDOWN_NOTICE_MS: '0', SHUTDOWN_TIMEOUT_MS: '1000' }).shutdownNoticeMs).toBe(0);
  });

  it('NODE_ENV=production refuses to start without JWT configuration and names the variables', () => {
    const err = configError({ NODE_ENV: 'production' });
    for (const v of ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL']) expect(err.message).toContain(v);
    const prod = loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET });
    expect(prod.production).toBe(true);
    expect(prod.allowedOrigins).toBe('same-origin');
    expect(prod.host).toBe('0.0.0.0');
    expect(loadConfig({ NODE_ENV: 'production', JWKS_URL: 'https://id.example/jwks.json' }).jwt.jwksUrl?.href).toBe('https://id.example/jwks.json');
  });

  it('production refuses the example secret and example passwords; development accepts them', () => {
    const example = parse(readFileSync(join(import.meta.dirname, '../../deploy/k8s/secret.example.yaml'), 'utf8')) as { stringData: Record<string, string> };
    const { JWT_SECRET = '', DATABASE_URL = '', REDIS_URL = '' } = example.stringData;
    expect(configError({ NODE_ENV: 'production', JWT_SECRET }).variable).toBe('JWT_SECRET');
    expect(configError({ NODE_ENV: 'production', JWT_SECRET }).message).toMatch(/placeholder.*openssl rand/);
    expect(configError({ NODE_ENV: 'production', JWT_SECRET: 'a'.repeat(40) }).variable).toBe('JWT_SECRET');
    expect(configError({ NODE_ENV: 'production', JWT_SECRET: SECRET, DATABASE_URL }).variable).toBe('DATABASE_URL');
    expect(configError({ NODE_ENV: 'production', JWT_SECRET: SECRET, REDIS_URL }).variable).toBe('REDIS_URL');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET, REDIS_URL: 'redis://:s3cr3t-Pa55@cache:6379' }).redisUrl).toBe('redis://:s3cr3t-Pa55@cache:6379');
    expect(loadConfig({ JWT_SECRET, DATABASE_URL, REDIS_URL }).jwt.secret).toBe(JWT_SECRET);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '65536'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['INSTANCE_ID', 'has space'],
    ['INSTANCE_ID', 'x'.repeat(65)],
    ['DATABASE_URL', 'mysql://h/db'],
    ['DATABASE_URL', 'sqlite:'],
    ['REDIS_URL', 'http://cache:6379'],
    ['JWKS_URL', 'not a url'],
    ['PING_INTERVAL_MS', '999'],
    ['PING_TIMEOUT_MS', 'soon'],
    ['SHUTDOWN_TIMEOUT_MS', '1e4'],
    ['MAX_MESSAGE_LENGTH', '0'],
    ['MAX_MESSAGE_LENGTH', 'lots'],
    ['MAX_FRAME_BYTES', '1023'],
    ['DEFAULT_CHANNELS', 'general,has space'],
    ['DEFAULT_CHANNELS', 'x'.repeat(65)],
    ['LOG_LEVEL', 'loud'],
    ['LOG_FORMAT', 'colour'],
    ['RATE_LIMIT_MESSAGES', 'fast'],
    ['RATE_LIMIT_MESSAGES', '0/10s'],
  ])('%s=%s stops start-up with a message naming the variable', (variable, value) => {
    const err = configError({ [variable]: value });
    expect(err.variable).toBe(variable);
    expect(err.message.startsWith(`${variable}: `)).toBe(true);
    expect(err.message.length).toBeGreaterThan(variable.length + 2);
  });
});

describe('resolveJwt: the production-JWT rule and the development secret', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'sb-config-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it('without JWT configuration in development: the secret generated once into the data directory', () => {
    const first = resolveJwt(loadConfig({ DATA_DIR: dataDir }));
    expect(first.jwt.secretIsDev).toBe(true);
    expect(Buffer.byteLength(first.jwt.secret ?? '')).toBeGreaterThanOrEqual(32);
    expect(readFileSync(join(dataDir, 'jwt-secret'), 'utf8').trim()).toBe(first.jwt.secret);
    expect(Object.isFrozen(first) && Object.isFrozen(first.jwt)).toBe(true);
    // Kept: the next start signs with the same secret.
    expect(resolveJwt(loadConfig({ DATA_DIR: dataDir })).jwt.secret).toBe(first.jwt.secret);
  });

  it.each([
    ['JWT_SECRET', { JWT_SECRET: SECRET }],
    ['JWT_PUBLIC_KEY', { JWT_PUBLIC_KEY: RSA_PEM }],
    ['JWKS_URL', { JWKS_URL: 'https://id.example/jwks.json' }],
  ])("with the operator's %s: that configuration as given, no development secret", (_name, env) => {
    for (const mode of [{}, { NODE_ENV: 'production' }]) {
      const config = loadConfig({ ...env, ...mode, DATA_DIR: dataDir });
      expect(resolveJwt(config)).toBe(config);
      expect(config.jwt.secretIsDev).toBe(false);
    }
    expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
  });

  it('production without JWT configuration is a ConfigError naming the variables, and generates nothing', () => {
    // loadConfig refuses it already; a Config built by other means meets the same rule here.
    const config = { ...loadConfig({ DATA_DIR: dataDir }), production: true };
    const err = configErrorOf(() => resolveJwt(config));
    expect(err.variable).toBe('JWT_SECRET');
    for (const v of ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL']) expect(err.message).toContain(v);
    expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
  });
});

describe('the environment', () => {
  const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

  it('the server reads it only through loadConfig: process.env appears only as its input', () => {
    const reads = readdirSync(SRC, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => readFileSync(join(SRC, f), 'utf8').split('\n').filter((line) => line.includes('process.env')).map((line) => `${f}: ${line.trim()}`));
    expect(reads).toEqual([
      'cli.ts: return loadConfig({ ...process.env, ...overrides });',
      'config.ts: export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<Config> {',
    ]);
  });
});

describe('development features only where they cannot hurt', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'sb-modes-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it('HOST: 127.0.0.1 outside production, 0.0.0.0 in production; an explicit HOST always wins', () => {
    for (const mode of [undefined, 'development', 'test', 'staging']) expect(loadConfig(mode ? { NODE_ENV: mode } : {}).host).toBe('127.0.0.1');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET, HOST: '127.0.0.1' }).host).toBe('127.0.0.1');
  });

  it.each([
    ['JWT_SECRET', { JWT_SECRET: SECRET }],
    ['JWT_PUBLIC_KEY', { JWT_PUBLIC_KEY: RSA_PEM }],
    ['JWKS_URL', { JWKS_URL: 'https://id.example/jwks.json' }],
  ])("/dev/token and the demo are off with the operator's %s, in every NODE_ENV", (_name, env) => {
    for (const mode of [undefined, 'development', 'test', 'staging', 'production']) {
      const config = resolveJwt(loadConfig({ ...env, ...(mode ? { NODE_ENV: mode } : {}), DEMO: 'true', DATA_DIR: dataDir }));
      expect(devFeaturesOn(config), `mode ${mode}`).toBe(false);
      expect(demoOn(config), `mode ${mode}`).toBe(false);
    }
  });

  it('/dev/token and the demo are on with the generated development secret, and DEMO=false turns the demo off', () => {
    for (const mode of [undefined, 'development', 'test', 'staging']) {
      const config = resolveJwt(loadConfig({ ...(mode ? { NODE_ENV: mode } : {}), DATA_DIR: dataDir }));
      expect(devFeaturesOn(config)).toBe(true);
      expect(demoOn(config)).toBe(true);
    }
    expect(demoOn(resolveJwt(loadConfig({ DEMO: 'false', DATA_DIR: dataDir })))).toBe(false);
  });

  it('the crash hook is armed only with NODE_ENV=test', () => {
    const hook = { SWITCHBOARD_FAULT_CRASH_AFTER_STORE: 'signal', JWT_SECRET: SECRET };
    expect(faultHookArmed(loadConfig({ ...hook, NODE_ENV: 'test' }))).toBe(true);
    expect(faultHookArmed(loadConfig({ NODE_ENV: 'test', JWT_SECRET: SECRET }))).toBe(false);
    for (const mode of [undefined, 'development', 'staging', 'production']) {
      expect(faultHookArmed(loadConfig({ ...hook, ...(mode ? { NODE_ENV: mode } : {}) })), `mode ${mode}`).toBe(false);
    }
  });

  it('a NODE_ENV other than production, development or test warns, naming what is enabled', () => {
    for (const mode of [undefined, 'production', 'development', 'test']) {
      expect(modeWarning(resolveJwt(loadConfig({ ...(mode ? { NODE_ENV: mode } : {}), JWT_SECRET: SECRET, DATA_DIR: dataDir })))).toBeUndefined();
    }
    const operator = modeWarning(loadConfig({ NODE_ENV: 'staging', JWT_SECRET: SECRET }));
    expect(operator).toContain('NODE_ENV=staging');
    expect(operator).toContain('/dev/token: off, demo page: off');
    expect(operator).toContain('listening on 127.0.0.1');
    const dev = modeWarning(resolveJwt(loadConfig({ NODE_ENV: 'staging', DATA_DIR: dataDir })));
    expect(dev).toContain('/dev/token: on, demo page: on (the generated development secret is in use)');
  });
});
