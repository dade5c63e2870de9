/**
 * Renders the deploy/ balancer configs for local use (the cluster script and the end-to-end tests)
 * and runs nginx / HAProxy in the foreground on them. The files in deploy/ stay the one source of
 * truth: rendering rewrites only the upstream servers, the listen address and the tagged sticky lines.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, httpStatus } from '../../test/helpers/ports.js';
import { startProcess } from '../../test/helpers/processes.js';
import { findBinary } from './binaries.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const NGINX_CONF = join(REPO_ROOT, 'deploy/nginx/nginx.conf');
export const HAPROXY_CFG = join(REPO_ROOT, 'deploy/haproxy/haproxy.cfg');

/** How nginx picks the instance: the reference's `ip_hash`, the cookie-keyed consistent hash, or plain round-robin. */
export type NginxSticky = 'ip_hash' | 'cookie' | 'none';

export interface NginxRenderOptions {
  /** `host:port` of each instance. */
  upstreams: string[];
  /** `listen` argument, e.g. `127.0.0.1:8080`. */
  listen: string;
  /** @default 'ip_hash' (what the file ships with) */
  sticky?: NginxSticky;
  /** @default 1 */
  workerProcesses?: number;
  /** Directory for nginx's temp paths; omitted = the compiled-in defaults. */
  tempDir?: string;
  /** `access_log` argument. @default 'off' */
  accessLog?: string;
}

export interface HaproxyRenderOptions {
  upstreams: string[];
  /** `bind` argument, e.g. `127.0.0.1:8080`. */
  bind: string;
  /** Cookie affinity (as shipped) or, for the negative control, plain round-robin. @default true */
  sticky?: boolean;
}

const hostPort = (u: string) => {
  const s = u.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '');
  if (!/^[^\s/;]+:\d+$/.test(s)) throw new Error(`upstream must be host:port or http://host:port, got ${JSON.stringify(u)}`);
  return s;
};

/** Replaces the run of `server` lines in `block` (a regex matching the block's opening line). */
function replaceServers(text: string, blockStart: RegExp, render: (first: string, addr: string, i: number) => string, upstreams: string[]): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => blockStart.test(l));
  if (start < 0) throw new Error(`config has no block matching ${blockStart}`);
  const isServer = (l: string) => /^\s*server\s+\S+/.test(l);
  const first = lines.findIndex((l, i) => i > start && isServer(l));
  if (first < 0) throw new Error(`no server lines after ${blockStart}`);
  let end = first;
  while (end + 1 < lines.length && isServer(lines[end + 1]!)) end++;
  const rendered = upstreams.map((u, i) => render(lines[first]!, hostPort(u), i));
  lines.splice(first, end - first + 1, ...rendered);
  return lines.join('\n');
}

function replaceOne(text: string, re: RegExp, by: string, what: string): string {
  const matches = text.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`));
  if (matches?.length !== 1) throw new Error(`expected exactly one ${what} in the config, found ${matches?.length ?? 0}`);
  return text.replace(re, by);
}

/** deploy/nginx/nginx.conf with local upstreams, listen address and sticky mode. */
export function renderNginxConf(template: string, o: NginxRenderOptions): string {
  if (o.upstreams.length === 0) throw new Error('at least one upstream is needed');
  const sticky = o.sticky ?? 'ip_hash';
  let text = template;

  // Lines tagged `# sticky=<mode>`: the chosen mode's are uncommented, all others commented out.
  const seen = new Set<string>();
  text = text
    .split('\n')
    .map((line) => {
      const m = /^(\s*)(?:#\s*)?(.*?;)(\s*#\s*sticky=([a-z_]+))\s*$/.exec(line);
      if (!m) return line;
      const [, indent, directive, tag, mode] = m;
      seen.add(mode!);
      return mode === sticky ? `${indent}${directive}${tag}` : `${indent}# ${directive}${tag}`;
    })
    .join('\n');
  if (sticky !== 'none' && !seen.has(sticky)) throw new Error(`nginx.conf has no line tagged "# sticky=${sticky}"`);

  text = replaceServers(
    text,
    /^\s*upstream\s+switchboard\s*\{/,
    (first, addr) => first.replace(/^(\s*server\s+)\S+/, `$1${addr}`),
    o.upstreams,
  );
  text = replaceOne(text, /^(\s*)listen\s+[^;]+;/m, `$1listen ${o.listen};`, 'listen directive');
  text = replaceOne(text, /^worker_processes\s+[^;]+;/m, `worker_processes ${o.workerProcesses ?? 1};`, 'worker_processes directive');
  text = replaceOne(text, /^(\s*)access_log\s+[^;]+;/m, `$1access_log ${o.accessLog ?? 'off'};`, 'access_log directive');
  if (o.tempDir) {
    const t = o.tempDir;
    const paths = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
      .map((k) => `    ${k}_temp_path ${join(t, `${k}_temp`)};`)
      .join('\n');
    text = replaceOne(text, /^http\s*\{\s*$/m, `http {\n${paths}`, '"http {" line');
  }
  return text;
}

/** deploy/haproxy/haproxy.cfg with local upstreams and bind address; sticky: false = round-robin without cookie. */
export function renderHaproxyCfg(template: string, o: HaproxyRenderOptions): string {
  if (o.upstreams.length === 0) throw new Error('at least one upstream is needed');
  let text = replaceServers(
    template,
    /^backend\s+switchboard\b/,
    (first, addr, i) =>
      first
        .replace(/^(\s*server\s+)\S+\s+\S+/, `$1switchboard-${i + 1} ${addr}`)
        .replace(/\bcookie\s+\S+/, `cookie s${i + 1}`),
    o.upstreams,
  );
  text = replaceOne(text, /^(\s*)bind\s+\S+/m, `$1bind ${o.bind}`, 'bind line');
  if (o.sticky === false) {
    // The negative control: no affinity cookie, every request to the next server in turn.
    text = text
      .split('\n')
      .map((l) => (/#\s*sticky\s*$/.test(l) && !/^\s*#/.test(l) ? l.replace(/^(\s*)/, '$1# ') : l))
      .join('\n');
    text = replaceOne(text, /^(\s*)balance\s+\S+/m, '$1balance roundrobin', 'balance line');
  }
  return text;
}

export interface RunningBalancer {
  kind: 'nginx' | 'haproxy';
  url: string;
  port: number;
  /** The rendered configuration file. */
  configPath: string;
  proc: ChildProcess;
  /** What the process printed (errors, warnings). */
  output(): string;
  exited: Promise<number | string>;
  /** SIGTERM (SIGKILL after 3 s), then removes the rendered config. */
  stop(): Promise<void>;
}

interface Prepared {
  /** A fresh temp dir holding the rendered config (and nginx's temp paths). */
  dir: string;
  configPath: string;
}

/**
 * Runs the balancer in the foreground as a tracked process (killed when this process exits) and
 * resolves once it answers HTTP on its port (any status: the instances behind may not be up yet).
 */
async function launch(o: { kind: 'nginx' | 'haproxy'; bin: string; args: string[]; prepared: Prepared; port: number; host: string; detached: boolean }): Promise<RunningBalancer> {
  const { kind, prepared, port, host } = o;
  const proc = startProcess(o.bin, o.args, { name: kind, cwd: prepared.dir, detached: o.detached });
  const url = `http://${host}:${port}`;
  const stop = async () => {
    await proc.stop('SIGTERM', 3000);
    rmSync(prepared.dir, { recursive: true, force: true });
  };
  const answers = async () => (await httpStatus(`${url}/healthz`)) !== undefined;
  try {
    await proc.waitUntil(answers, `${kind} to answer on ${url}`, 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { kind, url, port, configPath: prepared.configPath, proc: proc.child, output: () => proc.output(), exited: proc.exited, stop };
}

export interface StartOptions {
  upstreams: string[];
  /** @default a free port */
  port?: number;
  /** @default 127.0.0.1 */
  host?: string;
  /**
   * Own process group: a terminal's Ctrl-C then reaches only the parent, which stops things in
   * order (the cluster script). Tests leave it off, so an interrupted run takes the balancer along.
   * @default false
   */
  detached?: boolean;
}

const nginxArgs = ({ dir, configPath }: Prepared) => ['-p', `${dir}/`, '-c', configPath, '-e', 'stderr', '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`];

/** Writes the rendered nginx config into a fresh temp dir (readable by nginx's unprivileged workers). */
function prepareNginx(o: Omit<NginxRenderOptions, 'tempDir'>): Prepared {
  const dir = mkdtempSync(join(tmpdir(), 'sb-nginx-'));
  // Started as root, nginx's workers run as an unprivileged user; they must reach the temp paths.
  chmodSync(dir, 0o755);
  const configPath = join(dir, 'nginx.conf');
  writeFileSync(configPath, renderNginxConf(readFileSync(NGINX_CONF, 'utf8'), { ...o, tempDir: dir }));
  return { dir, configPath };
}

/** Writes the rendered HAProxy config into a fresh temp dir. */
function prepareHaproxy(o: HaproxyRenderOptions): Prepared {
  const dir = mkdtempSync(join(tmpdir(), 'sb-haproxy-'));
  const configPath = join(dir, 'haproxy.cfg');
  writeFileSync(configPath, renderHaproxyCfg(readFileSync(HAPROXY_CFG, 'utf8'), o));
  return { dir, configPath };
}

const haproxyArgs = ({ configPath }: Prepared) => ['-f', configPath];

/** Runs nginx in the foreground with deploy/nginx/nginx.conf rendered for these upstreams. */
export async function runNginx(o: StartOptions & { sticky?: NginxSticky }): Promise<RunningBalancer> {
  const bin = findBinary('nginx');
  const host = o.host ?? '127.0.0.1';
  const port = o.port ?? (await freePort(host));
  const prepared = prepareNginx({ upstreams: o.upstreams, listen: `${host}:${port}`, sticky: o.sticky ?? 'ip_hash' });
  return launch({ kind: 'nginx', bin, args: nginxArgs(prepared), prepared, port, host, detached: o.detached ?? false });
}

/** Runs HAProxy in the foreground (-db) with deploy/haproxy/haproxy.cfg rendered for these upstreams. */
export async function runHaproxy(o: StartOptions & { sticky?: boolean }): Promise<RunningBalancer> {
  const bin = findBinary('haproxy');
  const host = o.host ?? '127.0.0.1';
  const port = o.port ?? (await freePort(host));
  const prepared = prepareHaproxy({ upstreams: o.upstreams, bind: `${host}:${port}`, sticky: o.sticky ?? true });
  return launch({ kind: 'haproxy', bin, args: [...haproxyArgs(prepared), '-db'], prepared, port, host, detached: o.detached ?? false });
}

export interface ConfigCheck {
  ok: boolean;
  output: string;
}

/** Runs the balancer's own config check on a prepared config, then removes it. */
function check(bin: string, args: string[], prepared: Prepared): ConfigCheck {
  try {
    const r = spawnSync(bin, args, { encoding: 'utf8' });
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(prepared.dir, { recursive: true, force: true });
  }
}

/** `nginx -t` on the rendered config. */
export function checkNginxConf(o: { upstreams: string[]; sticky?: NginxSticky }): ConfigCheck {
  const bin = findBinary('nginx');
  const prepared = prepareNginx({ upstreams: o.upstreams, listen: '127.0.0.1:8080', sticky: o.sticky ?? 'ip_hash' });
  return check(bin, ['-t', ...nginxArgs(prepared)], prepared);
}

/** `haproxy -c` on the rendered config. */
export function checkHaproxyCfg(o: { upstreams: string[]; sticky?: boolean }): ConfigCheck {
  const bin = findBinary('haproxy');
  const prepared = prepareHaproxy({ upstreams: o.upstreams, bind: '127.0.0.1:8080', sticky: o.sticky ?? true });
  return check(bin, ['-c', ...haproxyArgs(prepared)], prepared);
}
