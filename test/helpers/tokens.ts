import { createSecretKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';

/** The HS256 secret every test server is started with. */
export const TEST_SECRET = 'switchboard-test-secret-0123456789abcdef';
const key = createSecretKey(Buffer.from(TEST_SECRET, 'utf8'));

export interface TokenOptions {
  channels?: string[];
  admin?: boolean;
  name?: string;
  /** Seconds until expiry; negative for an expired token. @default 3600 */
  ttl?: number;
  issuer?: string;
  audience?: string;
  secret?: string;
}

/** Signs a test token the way a real identity provider would. */
export async function token(userId: string, o: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({
    ...(o.channels ? { channels: o.channels } : {}),
    ...(o.admin ? { role: 'admin' } : {}),
    ...(o.name ? { name: o.name } : {}),
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (o.ttl ?? 3600));
  if (o.issuer) jwt.setIssuer(o.issuer);
  if (o.audience) jwt.setAudience(o.audience);
  return jwt.sign(o.secret ? createSecretKey(Buffer.from(o.secret, 'utf8')) : key);
}

/**
 * A data directory whose generated development secret is TEST_SECRET, with the environment that makes
 * instances use it (`JWT_SECRET` unset, `DATA_DIR` there): the development features (`/dev/token`, the
 * demo sign-in) are on, as on a developer's machine, and tokens from token() verify. remove() deletes it.
 */
export function onDevSecret(): { env: Record<string, string>; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sb-devsecret-'));
  writeFileSync(join(dir, 'jwt-secret'), `${TEST_SECRET}\n`, { mode: 0o600 });
  return { env: { JWT_SECRET: '', DATA_DIR: dir }, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
