import { createSecretKey } from 'node:crypto';
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
