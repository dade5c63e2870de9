import type { IncomingMessage } from 'node:http';
import proxyaddr from '@fastify/proxy-addr';

/** The client address of a request, as every per-address limit counts it. */
export type ClientAddress = (req: IncomingMessage) => string;

/**
 * The peer address, or the X-Forwarded-For entry that the proxies in `trustProxy` (proxy-addr syntax)
 * vouch for; a header from anyone else is ignored.
 */
export function clientAddressOf(trustProxy: readonly string[]): ClientAddress {
  const peer = (req: IncomingMessage) => req.socket.remoteAddress ?? 'unknown';
  if (trustProxy.length === 0) return peer;
  const trust = proxyaddr.compile([...trustProxy]);
  return (req) => {
    try {
      return proxyaddr(req, trust);
    } catch {
      return peer(req);
    }
  };
}
