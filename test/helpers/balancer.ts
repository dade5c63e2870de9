import { runHaproxy, runNginx, type NginxSticky } from '../../scripts/lib/balancers.js';
import { requireBinary } from './binaries.js';

/** A real nginx or HAProxy in front of instances, on a free loopback port. */
export interface Balancer {
  url: string;
  stop(): Promise<void>;
}

/**
 * Real nginx running deploy/nginx/nginx.conf, rendered with these upstreams
 * (`http://127.0.0.1:PORT`). `sticky`: `ip_hash` (as shipped, the default), `cookie` (the file's
 * NAT-proof alternative: consistent hash on nginx's own affinity cookie) or `none` (round-robin, the
 * negative control). stop() ends the process; an exit hook kills it if a test never gets there.
 */
export function startNginx(opts: { upstreams: string[]; sticky?: 'ip_hash' | 'cookie' | 'none' }): Promise<Balancer> {
  requireBinary('nginx');
  return runNginx({ upstreams: opts.upstreams, sticky: (opts.sticky ?? 'ip_hash') satisfies NginxSticky });
}

/**
 * Real HAProxy running deploy/haproxy/haproxy.cfg, rendered with these upstreams. `sticky` (default
 * true): the SERVERID cookie affinity as shipped; false: round-robin without the cookie.
 */
export function startHaproxy(opts: { upstreams: string[]; sticky?: boolean }): Promise<Balancer> {
  requireBinary('haproxy');
  return runHaproxy({ upstreams: opts.upstreams, sticky: opts.sticky ?? true });
}
