/**
 * The server's own user id: messages an admin publishes without naming a user carry it. No token can
 * claim it (an Authenticator refuses `sub: "system"` like an invalid token), so nothing a user sends
 * is ever taken for the server's, and no user's de-duplication keys meet the server's.
 */
export const SYSTEM_USER_ID = 'system';

/** The verified identity behind a connection or an HTTP request. */
export interface Principal {
  userId: string;
  name: string | undefined;
  isAdmin: boolean;
  /** Private channel ids the token grants. */
  channels: readonly string[];
  /** Token expiry, ms since the epoch. */
  expiresAt: number;
  /**
   * When the token was issued (its `iat`), ms since the epoch. Undefined when the token has none: it
   * counts as issued before any revocation, so its `channels` grant yields to every one.
   */
  issuedAt?: number | undefined;
}

/**
 * Verifies bearer tokens. Rejects with `AuthError` for any token that is not acceptable: bad
 * signature, algorithm not allowed (never `none`), expired, not yet valid, wrong issuer or audience,
 * missing `sub` or `exp`, a `sub` that is the server's own (SYSTEM_USER_ID). The error's message is safe to log but is never sent to the client verbatim.
 */
export interface Authenticator {
  verify(token: string): Promise<Principal>;
}

/** Issues tokens; only available with a symmetric (HS256) key, i.e. in development. */
export interface TokenIssuer {
  issue(input: { userId: string; name?: string; channels?: string[]; admin?: boolean; ttlSeconds?: number }): Promise<string>;
}

export class AuthError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuthError';
  }
}
