/**
 * What an npm user checks before depending on a package: a license file matching the license field,
 * where the code lives, no engine warnings on the Node we claim to support, source maps that resolve,
 * and every file the CLI points at inside the tarball. Runs on the built tree (`npm test` builds first).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const readJson = (file: string) => JSON.parse(readFileSync(join(ROOT, file), 'utf8'));

interface PackageJson {
  name: string;
  license?: string;
  repository?: unknown;
  homepage?: string;
  engines?: { node?: string };
  workspaces?: string[];
}

const root = readJson('package.json') as PackageJson;
const publishable = ['.', ...(root.workspaces ?? [])];

/** The files `npm pack` would put in the tarball of the package in `dir`. */
function packedFiles(dir: string): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: join(ROOT, dir), encoding: 'utf8' });
  const [info] = JSON.parse(out) as { files: { path: string }[] }[];
  return info!.files.map((f) => f.path);
}

describe.each(publishable)('package %s', (dir) => {
  const pkg = readJson(join(dir, 'package.json')) as PackageJson;
  const files = packedFiles(dir);

  it('has a LICENSE file in its tarball that states the license field', () => {
    expect(pkg.license).toBe('MIT');
    expect(files).toContain('LICENSE');
    expect(readFileSync(join(ROOT, dir, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
  });

  it('says where its code and issues live', () => {
    expect(pkg.repository).toBeTruthy();
    expect(pkg.homepage).toMatch(/^https:\/\//);
  });

  it('ships source maps only with their sources inline, or with the sources they name', () => {
    const maps = files.filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(join(ROOT, dir, map), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      sources.forEach((source, i) => {
        const inline = typeof sourcesContent?.[i] === 'string';
        const shipped = files.includes(normalize(join(dirname(map), source)));
        expect(inline || shipped, `${dir}/${map} names ${source}, which is neither inline nor in the package`).toBe(true);
      });
    }
  });
});

describe('the server package', () => {
  it('ships every docs/ file that the CLI help points at', () => {
    const cli = readFileSync(join(ROOT, 'dist/cli.js'), 'utf8');
    const named = [...new Set(cli.match(/docs\/[\w-]+\.md/g) ?? [])];
    const files = packedFiles('.');
    for (const doc of named) expect(files, `the CLI help names ${doc}`).toContain(doc);
  });
});

describe('engines', () => {
  it('every locked dependency supports the oldest Node the project claims (no EBADENGINE on npm ci)', () => {
    const floor = semver.minVersion(root.engines!.node!)!;
    const lock = readJson('package-lock.json') as { packages: Record<string, { engines?: { node?: string } | string[]; dev?: boolean }> };
    const refusing = Object.entries(lock.packages)
      .filter(([path]) => path.startsWith('node_modules/') || path === '')
      .flatMap(([path, entry]) => {
        const range = !Array.isArray(entry.engines) ? entry.engines?.node : undefined;
        return range && !semver.satisfies(floor, range) ? [`${path} wants node ${range}`] : [];
      });
    expect(refusing).toEqual([]);
  });

  it('the image builds on the current Node.js LTS line', () => {
    const dockerfile = readFileSync(join(ROOT, 'deploy/compose/Dockerfile'), 'utf8');
    const major = Number(/^ARG NODE_IMAGE=node:(\d+)-/m.exec(dockerfile)?.[1]);
    // Even majors become LTS; Node 20 reached its end of life in April 2026, 22 is in maintenance.
    expect(major % 2).toBe(0);
    expect(major).toBeGreaterThanOrEqual(24);
    // The workspace package the server imports its protocol from is built and copied into the image.
    expect(dockerfile).toMatch(/COPY packages\/client\/src/);
    expect(dockerfile).toMatch(/COPY --from=build .*\/app\/packages\/client\/dist/);
  });
});

const dockerEngine = (() => {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
})();

describe('the Docker image', () => {
  if (!dockerEngine) console.log('docker build skipped: no Docker engine answers `docker info` on this machine');
  it.skipIf(!dockerEngine)('builds from the repository root', () => {
    execFileSync('docker', ['build', '-f', 'deploy/compose/Dockerfile', '-t', 'switchboard:test', '.'], { cwd: ROOT, stdio: 'inherit', timeout: 600_000 });
    const [image] = JSON.parse(execFileSync('docker', ['image', 'inspect', 'switchboard:test'], { encoding: 'utf8' })) as { Config: { Cmd: string[] } }[];
    expect(image!.Config.Cmd).toEqual(['node', 'dist/cli.js', 'serve']);
  });
});
