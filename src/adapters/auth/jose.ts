import { createSecretKey, type KeyObject } from 'node:crypto';
import {
  createRemoteJWKSet,
  errors as joseErrors,
  decodeProtectedHeader,
  jwtVerify,
  SignJWT,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { JwtConfig } from '../../config.js';
import { AuthError, SYSTEM_USER_ID, type Authenticator, type Principal, type TokenIssuer } from '../../ports/authenticator.js';

// Strict: a token is refused from its `exp` on, exactly when a live session holding it is ended.
const CLOCK_TOLERANCE_S = 0;

/** Verifies JWTs with the keys of the configuration, each key pinned to its own algorithm. */
export class JoseAuthenticator implements Authenticator {
  private readonly secret: KeyObject | undefined;
  private readonly publicKey: KeyObject | undefined;
  private readonly publicAlg: string | undefined;
  private readonly jwks: JWTVerifyGetKey | undefined;
  private readonly issuer: string | undefined;
  private readonly audience: string | undefined;

  constructor(config: JwtConfig) {
    // Imported once: re-deriving the key on each handshake is what makes the naive check slow.
    this.secret = config.secret ? createSecretKey(Buffer.from(config.secret, 'utf8')) : undefined;
    this.publicKey = config.publicKey;
    this.publicAlg = config.publicKeyAlg;
    this.jwks = config.jwksUrl ? createRemoteJWKSet(config.jwksUrl, { timeoutDuration: 5000, cooldownDuration: 30_000 }) : undefined;
    this.issuer = config.issuer;
    this.audience = config.audience;
    if (!this.secret && !this.publicKey && !this.jwks) throw new Error('JoseAuthenticator needs at least one key');
  }

  async verify(token: string): Promise<Principal> {
    let alg: unknown;
    let kid: unknown;
    try {
      ({ alg, kid } = decodeProtectedHeader(token));
    } catch (cause) {
      throw new AuthError('malformed token', { cause });
    }
    const options = {
      issuer: this.issuer,
      audience: this.audience,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: CLOCK_TOLERANCE_S,
    };
    let payload: JWTPayload;
    try {
      if (alg === 'HS256' && this.secret) {
        ({ payload } = await jwtVerify(token, this.secret, { ...options, algorithms: ['HS256'] }));
      } else if (this.publicAlg && alg === this.publicAlg && this.publicKey && !(kid !== undefined && this.jwks)) {
        // The PEM key has no kid; a token that names one, when a JWKS is configured, is the set's.
        try {
          ({ payload } = await jwtVerify(token, this.publicKey, { ...options, algorithms: [this.publicAlg] }));
        } catch (err) {
          if (!this.jwks || !(err instanceof joseErrors.JWSSignatureVerificationFailed)) throw err;
          ({ payload } = await jwtVerify(token, this.jwks, { ...options, algorithms: ['RS256', 'ES256'] }));
        }
      } else if ((alg === 'RS256' || alg === 'ES256') && this.jwks) {
        ({ payload } = await jwtVerify(token, this.jwks, { ...options, algorithms: ['RS256', 'ES256'] }));
      } else {
        throw new AuthError(`algorithm ${typeof alg === 'string' ? alg.slice(0, 16) : 'missing'} is not accepted`);
      }
    } catch (cause) {
      if (cause instanceof AuthError) throw cause;
      throw new AuthError((cause as Error)?.message ?? 'verification failed', { cause });
    }
    return toPrincipal(payload);
  }
}

function toPrincipal(p: JWTPayload): Principal {
  if (typeof p.sub !== 'string' || p.sub.length === 0 || p.sub.length > 128 || !p.sub.isWellFormed() || p.sub.includes('\u0000')) {
    throw new AuthError('sub must be a non-empty string of at most 128 characters');
  }
  if (p.sub === SYSTEM_USER_ID) throw new AuthError('sub is the server\'s own user id');
  const channels = p['channels'];
  if (channels !== undefined && !(Array.isArray(channels) && channels.every((c) => typeof c === 'string'))) {
    throw new AuthError('channels must be an array of channel ids');
  }
  const name = p['name'];
  return {
    userId: p.sub,
    name: typeof name === 'string' ? name.slice(0, 128) : undefined,
    isAdmin: p['role'] === 'admin',
    channels: (channels as string[] | undefined)?.slice(0, 10_000) ?? [],
    expiresAt: (p.exp ?? 0) * 1000,
    issuedAt: typeof p.iat === 'number' && Number.isFinite(p.iat) ? p.iat * 1000 : undefined,
  };
}

/** Signs HS256 tokens for the CLI and the development endpoint. */
export class HsTokenIssuer implements TokenIssuer {
  private readonly key: KeyObject;

  constructor(
    secret: string,
    private readonly claims: { issuer?: string | undefined; audience?: string | undefined } = {},
  ) {
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  async issue(input: { userId: string; name?: string; channels?: string[]; admin?: boolean; ttlSeconds?: number }): Promise<string> {
    const jwt = new SignJWT({
      ...(input.name ? { name: input.name } : {}),
      ...(input.channels?.length ? { channels: input.channels } : {}),
      ...(input.admin ? { role: 'admin' } : {}),
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(input.userId)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + (input.ttlSeconds ?? 3600));
    if (this.claims.issuer) jwt.setIssuer(this.claims.issuer);
    if (this.claims.audience) jwt.setAudience(this.claims.audience);
    return jwt.sign(this.key);
  }
}
