#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createApp, type App } from './app.js';
import { ConfigError, faultHookArmed, loadConfig, type Config, type CrashAfterStoreSpec } from './config.js';
import { HsTokenIssuer } from './adapters/auth/jose.js';
import { openStore } from './adapters/store/index.js';
import { resolveJwt } from './dev-secret.js';
import { createLogger, type Logger } from './logger.js';
import type { Message } from 'switchboard-client/protocol';

const HELP = `switchboard: a horizontally scalable real-time chat server

Usage: switchboard <command> [options]

Commands:
  serve                    start an instance (the default; configured by environment variables)
  migrate                  create or upgrade the database schema, then exit
  token <userId>           print a signed JWT for development and scripts
      --channels a,b         private channels the token grants
      --admin                add role: admin
      --name <name>          display name
      --ttl <seconds>        lifetime (default 3600)

Options:
  -h, --help               show this help

Configuration: environment variables, see docs/configuration.md (PORT, DATABASE_URL, REDIS_URL,
JWT_SECRET, ALLOWED_ORIGIN, ...). With none set it runs one instance on :3000 with SQLite in ./data.`;

function fail(message: string): never {
  process.stderr.write(`switchboard: ${message}\n`);
  process.exit(2);
}

function config(): Readonly<Config> {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    throw err;
  }
}

/** Exit code of a crash the test-only fault hook caused (the chaos suite tells it from a real crash). */
const FAULT_EXIT_CODE = 86;

/** Whether the fault hook fires at this stored message. */
function armedBy(spec: CrashAfterStoreSpec): () => boolean {
  switch (spec.kind) {
    case 'signal': {
      let signalled = false;
      process.on('SIGUSR2', () => (signalled = true));
      return () => signalled;
    }
    case 'nth': {
      let count = 0;
      return () => ++count === spec.n;
    }
    case 'probability':
      return () => Math.random() < spec.p;
  }
}

/**
 * Test-only fault hook, for the chaos suite: SWITCHBOARD_FAULT_CRASH_AFTER_STORE makes the process die
 * after a message is stored and before it is broadcast or acknowledged. Armed only when a test asks for
 * it with NODE_ENV=test; ignored (with a warning) otherwise.
 */
function crashAfterStoreHook(cfg: Readonly<Config>, logger: Logger): ((m: Message) => void) | undefined {
  const spec = cfg.faultCrashAfterStore;
  if (!spec) return undefined;
  if (!faultHookArmed(cfg)) {
    logger.warn('SWITCHBOARD_FAULT_CRASH_AFTER_STORE is set but ignored: the test-only fault hook arms only with NODE_ENV=test');
    return undefined;
  }
  const armed = armedBy(spec);
  logger.warn({ spec }, 'test-only fault hook on: this process will crash after storing a message (SWITCHBOARD_FAULT_CRASH_AFTER_STORE)');
  return (m) => {
    if (!armed()) return;
    process.stderr.write(`switchboard: fault hook: crashing after storing ${m.id} (seq ${m.seq} of ${m.channelId}), before broadcasting it\n`);
    process.exit(FAULT_EXIT_CODE);
  };
}

async function serve(): Promise<void> {
  const cfg = config();
  const logger = createLogger({ level: cfg.logLevel, instanceId: cfg.instanceId });
  const afterStore = crashAfterStoreHook(cfg, logger);
  let app: App;
  try {
    app = await createApp(cfg, { logger, ...(afterStore ? { afterStore } : {}) });
  } catch (err) {
    logger.fatal({ reason: (err as Error).message }, 'start-up failed');
    process.exit(1);
  }
  const url = await app.listen().catch((err: NodeJS.ErrnoException) => {
    logger.fatal({ reason: err.message }, err.code === 'EADDRINUSE' ? `port ${cfg.port} is in use; set PORT to another one` : 'cannot listen');
    return process.exit(1);
  });
  logger.info(
    { url, store: cfg.databaseUrl.startsWith('sqlite:') ? 'sqlite' : 'postgres', redis: Boolean(cfg.redisUrl), channels: cfg.defaultChannels },
    `Switchboard listening on ${url}`,
  );
  if (cfg.redisUrl && cfg.databaseUrl.startsWith('sqlite:')) {
    logger.warn(
      'REDIS_URL is set but the store is SQLite: instances share rooms, yet each keeps its own history unless they all open the same file on one host. Set DATABASE_URL=postgres://… for several hosts.',
    );
  }
  if (app.config.jwt.secretIsDev) {
    logger.info(`development mode: get a token with \`npx switchboard token alice\` or \`curl -s -X POST ${url}/dev/token -H 'content-type: application/json' -d '{"userId":"alice"}'\``);
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'already shutting down; waiting for the drain to finish');
      return;
    }
    stopping = true;
    logger.info({ signal, timeoutMs: cfg.shutdownTimeoutMs }, 'shutting down gracefully');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: cfg.shutdownTimeoutMs }, 'shutdown timed out; exiting with code 1');
      process.exit(1);
    }, cfg.shutdownTimeoutMs);
    timer.unref();
    app.drain().then(
      () => {
        logger.info('shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection'));
}

async function migrate(): Promise<void> {
  const cfg = config();
  const logger = createLogger({ level: cfg.logLevel, instanceId: cfg.instanceId });
  const store = openStore(cfg.databaseUrl, logger, { lockTimeoutMs: cfg.sqliteLockTimeoutMs });
  try {
    await store.migrate();
    logger.info('database schema is up to date');
  } finally {
    await store.close();
  }
}

async function token(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      channels: { type: 'string' },
      admin: { type: 'boolean' },
      name: { type: 'string' },
      ttl: { type: 'string' },
    },
  });
  const userId = positionals[0];
  if (!userId) fail('token needs a user id: switchboard token <userId> [--channels a,b] [--admin] [--ttl seconds]');
  const cfg = resolveJwt(config());
  const secret = cfg.jwt.secret;
  if (!secret) fail('token signs with JWT_SECRET (HS256); this configuration has only public keys');
  const ttl = values.ttl === undefined ? 3600 : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 1) fail('--ttl takes a whole number of seconds');
  const jwt = await new HsTokenIssuer(secret, cfg.jwt).issue({
    userId,
    ttlSeconds: ttl,
    ...(values.name ? { name: values.name } : {}),
    ...(values.admin ? { admin: true } : {}),
    ...(values.channels ? { channels: values.channels.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
  });
  process.stdout.write(`${jwt}\n`);
}

const [command = 'serve', ...rest] = process.argv.slice(2);
if (command === '-h' || command === '--help' || command === 'help' || rest.includes('--help') || rest.includes('-h')) {
  process.stdout.write(`${HELP}\n`);
} else if (command === 'serve') {
  await serve();
} else if (command === 'migrate') {
  await migrate();
} else if (command === 'token') {
  await token(rest).catch((err: Error) => fail(err.message));
} else {
  fail(`unknown command "${command}"\n\n${HELP}`);
}
