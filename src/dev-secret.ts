import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasJwtConfig, requireJwtInProduction, withDevSecret, type Config } from './config.js';

/**
 * The development HS256 secret: generated once and kept in `<dataDir>/jwt-secret` (mode 0600), so
 * tokens stay valid across restarts. Concurrent first starts agree on one file ('wx' wins once).
 */
export function loadOrCreateDevSecret(dataDir: string): string {
  const file = join(dataDir, 'jwt-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  try {
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readFileSync(file, 'utf8').trim();
}

/**
 * The JWT configuration the server runs with, decided in this one place: the operator's (JWT_SECRET,
 * JWT_PUBLIC_KEY or JWKS_URL) as given; without one, in development, the generated development secret
 * (`jwt.secretIsDev`); without one in production, a ConfigError.
 */
export function resolveJwt(config: Readonly<Config>): Readonly<Config> {
  if (hasJwtConfig(config)) return config;
  requireJwtInProduction(config);
  return withDevSecret(config, loadOrCreateDevSecret(config.dataDir));
}
