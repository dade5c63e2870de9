import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian package of each binary the integration tests start. */
export const PACKAGES = {
  'redis-server': { path: '/usr/bin/redis-server', pkg: 'redis-server' },
  nginx: { path: '/usr/sbin/nginx', pkg: 'nginx-light' },
  haproxy: { path: '/usr/sbin/haproxy', pkg: 'haproxy' },
  chromium: { path: '/usr/bin/chromium', pkg: 'chromium' },
} as const;

/** The binary's path; throws with the apt command to run when it is missing (never skips). */
export function requireBinary(name: keyof typeof PACKAGES): string {
  const { path, pkg } = PACKAGES[name];
  if (existsSync(path)) return path;
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} is not installed; install it with: apt-get install -y ${pkg} (the test set-up in .ci/run does this)`);
  }
}
