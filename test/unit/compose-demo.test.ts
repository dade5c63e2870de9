/**
 * The compose file's documented paths lead somewhere: production mode explains itself, and the demo
 * overlay runs the instances in development mode on one shared development secret, so the page and
 * its sign-in at http://localhost:8080/ work through nginx. (No Docker engine here: this checks the
 * merged configuration against what the server does with it.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const ROOT = join(import.meta.dirname, '../..');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
type Service = { environment?: Record<string, string>; volumes?: string[]; ports?: string[] };
const load = (f: string) => parse(read(f), { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };

const base = load('deploy/compose/docker-compose.yml');
const demo = load('deploy/compose/demo.yml');
const INSTANCES = ['switchboard-1', 'switchboard-2', 'switchboard-3'];
/** Compose merges `environment` by key and appends `volumes` when a second file names the same service. */
const merged = (name: string): Service => ({
  environment: { ...base.services[name]!.environment, ...demo.services[name]?.environment },
  volumes: [...(base.services[name]!.volumes ?? []), ...(demo.services[name]?.volumes ?? [])],
});
/** The variables as the container sees them: the image's ENV lines first, then compose's. */
const imageEnv = Object.fromEntries([...read('deploy/compose/Dockerfile').matchAll(/^\s*(?:ENV\s+)?([A-Z_]+)=(\S+?)\s*\\?$/gm)].map((m) => [m[1]!, m[2]!]));
/** Compose's `${VAR:-}` with VAR unset. */
const interpolate = (env: Record<string, string>) => Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]));

describe('deploy/compose', () => {
  it('says what to open in each mode, in its first lines', () => {
    const head = read('deploy/compose/docker-compose.yml').split('\n').slice(0, 20).join('\n');
    expect(head).toContain('-f deploy/compose/demo.yml up');
    expect(head).toContain('open http://localhost:8080/');
    expect(head).toContain('SWITCHBOARD_URL=http://localhost:8080 node examples/chat.mjs');
    expect(base.services['nginx']!.ports).toContain('8080:8080');
  });

  it('production mode without JWT_SECRET stops with a message naming it', () => {
    const env = { ...imageEnv, ...interpolate(base.services['migrate']!.environment!) };
    expect(env['NODE_ENV']).toBe('production');
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/JWT_SECRET/);
  });

  it('the demo overlay runs every instance in development mode on one shared data directory', () => {
    for (const name of [...INSTANCES, 'migrate']) {
      const { environment, volumes } = merged(name);
      const config = loadConfig({ ...imageEnv, ...interpolate(environment!) });
      expect(config.production, name).toBe(false);
      expect(config.jwt.secret, `${name} must use the generated development secret`).toBeUndefined();
      expect(config.host, `${name} must listen beyond the container's loopback`).toBe('0.0.0.0');
      expect(volumes, name).toContain(`devdata:${config.dataDir}`);
    }
    expect(Object.keys(demo.volumes ?? {})).toContain('devdata');
    // The named volume is initialised from the image's directory, which the unprivileged user owns.
    expect(read('deploy/compose/Dockerfile')).toMatch(/mkdir -p \/app\/data && chown node:node \/app\/data/);
  });
});
