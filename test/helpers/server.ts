import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createApp, type App, type AppOptions } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { closeAllClients } from './client.js';
import { TEST_SECRET } from './tokens.js';

export interface TestServer {
  url: string;
  app: App;
  close(): Promise<void>;
}

/**
 * One instance in this process on a free port: fast to start, for single-instance tests.
 * Multi-instance and kill tests use startInstance() (child processes) instead.
 */
export async function startServer(env: Record<string, string> = {}, options: AppOptions = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-data-'));
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_SECRET: TEST_SECRET,
    DATABASE_URL: 'sqlite::memory:',
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    ...env,
  });
  const app = await createApp(config, { logger: pino({ level: config.logLevel }), ...options });
  const url = await app.listen();
  return {
    url,
    app,
    async close() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * For a describe block: starts a server before its tests, closes every client after each test and
 * the server after the block. Read `url` / `app` inside tests (the server exists from beforeAll on).
 */
export function useServer(env: Record<string, string> = {}): TestServer {
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startServer(env);
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    closeAllClients();
    await server?.close();
  });
  const started = () => {
    if (!server) throw new Error('useServer: the server starts in beforeAll; use it inside a test');
    return server;
  };
  return {
    get url() {
      return started().url;
    },
    get app() {
      return started().app;
    },
    close: () => started().close(),
  };
}
