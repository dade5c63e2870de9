/** The verified identity behind a connection or an HTTP request. */
export interface Principal {
  userId: string;
  name: string | undefined;
  isAdmin: boolean;
  /** Private channel ids the token grants. */
  channels: readonly string[];
  /** Token expiry, ms since the epoch. */
  expiresAt: number;
}

/**
 * Verifies bearer tokens. Rejects with `AuthError` for any token that is not acceptable: bad
 * signature, algorithm not allowed (never `none`), expired, not yet valid, wrong issuer or audience,
 * missing `sub` or `exp`. The error's message is safe to log but is never sent to the client verbatim.
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
