import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * The system binaries that the local cluster, the tests and the bench start, with the Debian package
 * of each. `npm test` installs the missing ones first (scripts/test-setup.ts).
 */
export const SYSTEM_BINARIES = {
  'redis-server': { path: '/usr/bin/redis-server', pkg: 'redis-server' },
  nginx: { path: '/usr/sbin/nginx', pkg: 'nginx-light' },
  haproxy: { path: '/usr/sbin/haproxy', pkg: 'haproxy' },
  chromium: { path: '/usr/bin/chromium', pkg: 'chromium' },
  prometheus: { path: '/usr/bin/prometheus', pkg: 'prometheus' },
  promtool: { path: '/usr/bin/promtool', pkg: 'prometheus' },
} as const;

export type SystemBinary = keyof typeof SYSTEM_BINARIES;

export class MissingBinaryError extends Error {
  constructor(readonly binary: SystemBinary, readonly pkg: string) {
    super(`${binary} is not installed; install it with: sudo apt-get install -y ${pkg} (npm test installs it when run as root)`);
    this.name = 'MissingBinaryError';
  }
}

/** The binary's path (Debian location first, then PATH), or undefined. */
export function locateBinary(name: SystemBinary): string | undefined {
  const { path } = SYSTEM_BINARIES[name];
  if (existsSync(path)) return path;
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The binary's path; throws MissingBinaryError naming the apt package (never skips). */
export function findBinary(name: SystemBinary): string {
  const found = locateBinary(name);
  if (found) return found;
  throw new MissingBinaryError(name, SYSTEM_BINARIES[name].pkg);
}
