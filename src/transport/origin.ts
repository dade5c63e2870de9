import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.js';

const LOCALHOST = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/;

/**
 * Whether a browser request with this Origin may open a Socket.IO session. Requests without an
 * Origin header do not come from a browser page and are allowed (CORS cannot protect them anyway).
 */
export function originAllowed(config: Pick<Config, 'allowedOrigins'>, req: Pick<IncomingMessage, 'headers'>): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const allowed = config.allowedOrigins;
  if (allowed === 'dev-localhost') return LOCALHOST.test(origin);
  if (allowed === 'same-origin') {
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }
  return allowed.includes(origin);
}

/** The `cors.origin` option of Socket.IO: which origins get CORS headers on polling requests. */
export function corsOrigin(config: Pick<Config, 'allowedOrigins'>) {
  return (origin: string | undefined, cb: (err: Error | null, allow?: boolean) => void) => {
    if (origin === undefined) return cb(null, false);
    const allowed = config.allowedOrigins;
    if (allowed === 'dev-localhost') return cb(null, LOCALHOST.test(origin));
    if (allowed === 'same-origin') return cb(null, false);
    return cb(null, allowed.includes(origin));
  };
}
