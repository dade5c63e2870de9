/**
 * The SDK as an application gets it: packages/client copied to a temp dir (so the worktree's dist/,
 * which running instances import, stays untouched), built and packed by its own scripts, installed
 * from the tarball alone into a scratch project (its dependencies come from the npm registry),
 * typechecked strictly under moduleResolution node16 and bundler, imported by Node, and bundled for
 * the browser with esbuild.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(ROOT, 'node_modules/.bin/tsc');
/** The size limit of the issue: the SDK with socket.io-client, minified. */
const BUNDLE_LIMIT = 60_000;
/** Server-side packages; none may come with the client. */
const SERVER_PACKAGES = ['fastify', 'pg', 'ioredis', 'better-sqlite3', 'kysely', 'socket.io', 'pino', 'jose'];

const PROGRAM = `import { createClient, type Message, type SwitchboardClient } from 'switchboard-client';
import { ErrorCode } from 'switchboard-client/protocol';

const client: SwitchboardClient = createClient({ url: 'http://127.0.0.1:3000', getToken: () => 'a token' });
const seen: Message[] = [];
const stop = client.subscribe('general', {
  onMessage: (m) => seen.push(m),
  onError: (e) => console.log(e.code === ErrorCode.FORBIDDEN),
});
const sent: Promise<Message> = client.send('general', 'hello');
// @ts-expect-error content is a string: unused (an error) if the SDK's types did not load
void client.send('general', 42);
void sent.then((m) => console.log(m.seq, seen.length), () => stop());
`;
const CONSTANT_ONLY = `import { ErrorCode } from 'switchboard-client/protocol';\nconsole.log(ErrorCode.RATE_LIMITED);\n`;

let tmp: string;
/** The scratch project that installed the tarball. */
let app: string;
/** The package as installed there. */
let installed: string;

/** The environment without npm's own variables, so an `npm test` around us does not steer the child npm. */
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
const npm = (args: string[], cwd: string) => run('npm', args, { cwd, env: cleanEnv(), maxBuffer: 16 * 1024 * 1024 });

/** A copy of the package beside a copy of the root tsconfig it extends, with the repo's node_modules for tsc. */
function copyPackage(): string {
  const repo = join(tmp, 'repo');
  const pkg = join(repo, 'packages/client');
  mkdirSync(pkg, { recursive: true });
  for (const f of readdirSync(join(ROOT, 'packages/client'))) {
    if (f !== 'dist' && f !== 'node_modules') cpSync(join(ROOT, 'packages/client', f), join(pkg, f), { recursive: true });
  }
  cpSync(join(ROOT, 'tsconfig.json'), join(repo, 'tsconfig.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(repo, 'node_modules'), 'dir');
  return pkg;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'sb-sdk-package-'));
  const pkg = copyPackage();
  await npm(['pack', '--pack-destination', tmp], pkg); // its prepack script builds dist/
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack made no tarball');
  app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  await npm(['install', join(tmp, tarball), '--no-audit', '--no-fund'], app);
  installed = join(app, 'node_modules/switchboard-client');
  writeFileSync(join(app, 'main.ts'), PROGRAM);
  writeFileSync(join(app, 'constant.ts'), CONSTANT_ONLY);
}, 240_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Every file of a directory tree, relative to it. */
function filesOf(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesOf(dir, join(prefix, e.name)) : [join(prefix, e.name)],
  );
}

/** Installed packages, scoped ones counted one by one. */
function installedPackages(): string[] {
  const root = join(app, 'node_modules');
  return readdirSync(root)
    .filter((d) => !d.startsWith('.'))
    .flatMap((d) => (d.startsWith('@') ? readdirSync(join(root, d)).map((s) => `${d}/${s}`) : [d]));
}

async function bundle(entry: string): Promise<string> {
  const out = await build({ entryPoints: [join(app, entry)], absWorkingDir: app, bundle: true, minify: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent' });
  return out.outputFiles[0]!.text;
}

describe('the switchboard-client package', () => {
  it('ships its build, types and LICENSE, ESM without side effects, with socket.io-client and at most one more dependency', () => {
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    expect(manifest).toMatchObject({ name: 'switchboard-client', type: 'module', sideEffects: false, license: 'MIT' });
    expect(manifest.repository.url).toMatch(/^git\+https:\/\//);
    expect(manifest.homepage).toMatch(/^https:\/\//);
    const deps = Object.keys(manifest.dependencies);
    expect(deps).toContain('socket.io-client');
    expect(deps.length).toBeLessThanOrEqual(2);
    expect(readFileSync(join(installed, 'LICENSE'), 'utf8')).toMatch(/^MIT License\s+Copyright \(c\) 2026 the Switchboard authors/);
    // Every published entry point exists (the source condition is for the repository's own tests).
    for (const entry of Object.values(manifest.exports as Record<string, string | Record<string, string>>)) {
      const targets = typeof entry === 'string' ? [entry] : [entry['types']!, entry['default']!];
      for (const t of targets) expect(existsSync(join(installed, t)), t).toBe(true);
    }
    expect(filesOf(installed).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('has source maps that carry their sources, each named by the file it maps', () => {
    const maps = filesOf(installed).filter((f) => f.endsWith('.js.map'));
    expect(maps.length).toBeGreaterThan(0);
    for (const m of maps) {
      const map = JSON.parse(readFileSync(join(installed, m), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      expect(map.sources.length, m).toBeGreaterThan(0);
      expect(map.sourcesContent?.length, m).toBe(map.sources.length);
      for (const content of map.sourcesContent ?? []) expect(typeof content, m).toBe('string');
      const js = readFileSync(join(installed, m.replace(/\.map$/, '')), 'utf8');
      expect(js, m).toContain(`//# sourceMappingURL=${m.split('/').pop()}`);
    }
  });

  it('installs alone: the tarball brings a handful of packages and no server dependency', () => {
    const packages = installedPackages();
    console.log(`sdk-package: ${packages.length} packages installed (${packages.join(', ')})`);
    expect(packages).toContain('switchboard-client');
    expect(packages.filter((p) => SERVER_PACKAGES.includes(p))).toEqual([]);
    expect(packages.length).toBeLessThan(20);
  });

  it.each(['node16', 'bundler'])('typechecks a strict program under moduleResolution %s', async (resolution) => {
    const module = resolution === 'node16' ? 'node16' : 'esnext';
    const tsconfig = {
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', lib: ['ES2022', 'DOM'], module, moduleResolution: resolution, skipLibCheck: false, types: [] },
      files: ['main.ts'],
    };
    writeFileSync(join(app, `tsconfig.${resolution}.json`), JSON.stringify(tsconfig));
    const result = await run(TSC, ['-p', `tsconfig.${resolution}.json`], { cwd: app }).then(
      () => 'passed',
      (err: { stdout?: string }) => `failed:\n${err.stdout ?? String(err)}`,
    );
    expect(result).toBe('passed');
  }, 120_000);

  it('loads in Node from both entry points', async () => {
    const script = "import { createClient } from 'switchboard-client'; import { ErrorCode, isRetryable } from 'switchboard-client/protocol'; console.log(typeof createClient, ErrorCode.RATE_LIMITED, isRetryable(ErrorCode.RATE_LIMITED));";
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    expect(stdout.trim()).toBe('function RATE_LIMITED true');
  });

  it(`bundles for the browser, socket.io-client included, under ${BUNDLE_LIMIT} bytes`, async () => {
    const sdk = await bundle('main.ts');
    console.log(`sdk-package: browser bundle ${sdk.length} B minified (${gzipSync(sdk).length} B gzipped)`);
    expect(sdk).toContain('EIO'); // engine.io-client's protocol query parameter: socket.io-client is in
    expect(sdk).not.toMatch(/Zod/);
    expect(sdk.length).toBeLessThan(BUNDLE_LIMIT);
  });

  it('bundles a protocol constant alone without zod', async () => {
    const constant = await bundle('constant.ts');
    console.log(`sdk-package: ErrorCode alone ${constant.length} B minified`);
    expect(constant).toContain('RATE_LIMITED');
    expect(constant).not.toMatch(/zod/i);
    expect(constant.length).toBeLessThan(2_000);
  });
});
