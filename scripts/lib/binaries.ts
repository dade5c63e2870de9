import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian package of each binary the local cluster starts. */
export const SYSTEM_BINARIES = {
  'redis-server': { path: '/usr/bin/redis-server', pkg: 'redis-server' },
  nginx: { path: '/usr/sbin/nginx', pkg: 'nginx-light' },
  haproxy: { path: '/usr/sbin/haproxy', pkg: 'haproxy' },
} as const;

export type SystemBinary = keyof typeof SYSTEM_BINARIES;

export class MissingBinaryError extends Error {
  constructor(readonly binary: SystemBinary, readonly pkg: string) {
    super(`${binary} is not installed; install it with: sudo apt-get install -y ${pkg}`);
    this.name = 'MissingBinaryError';
  }
}

/** The binary's path (Debian location first, then PATH); throws MissingBinaryError naming the apt package. */
export function findBinary(name: SystemBinary): string {
  const { path, pkg } = SYSTEM_BINARIES[name];
  if (existsSync(path)) return path;
  try {
    const found = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    if (found) return found;
  } catch {
    // not on PATH either
  }
  throw new MissingBinaryError(name, pkg);
}
