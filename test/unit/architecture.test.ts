import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SRC = join(ROOT, 'src');

/** Files allowed to emit to clients, and why. Everything else sends through the Broadcaster port. */
const EMITTERS: Record<string, string> = {
  'src/transport/broadcaster.ts': 'the Broadcaster implementation',
};
/** What src/core may import besides ports/ and its own files. */
const CORE_PACKAGES = new Set(['switchboard-client/protocol']);
const CORE_TYPE_ONLY_PACKAGES = new Set(['pino']);

interface Import {
  spec: string;
  typeOnly: boolean;
}

const sourceFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });

const rel = (path: string) => relative(ROOT, path);
/** The code without comments (a `//` after a colon is kept: it is a URL's). */
const withoutComments = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');

/** The module specifiers a file imports or re-exports, static, side-effect and dynamic. */
function importsOf(text: string): Import[] {
  const code = withoutComments(text);
  const found: Import[] = [];
  for (const m of code.matchAll(/^\s*(?:import|export)\s+(type\s+)?[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm)) {
    found.push({ spec: m[2]!, typeOnly: m[1] !== undefined });
  }
  for (const m of code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) found.push({ spec: m[1]!, typeOnly: false });
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push({ spec: m[1]!, typeOnly: false });
  return found;
}

/** The file a relative specifier names (`./x.js` is `./x.ts` in the source); undefined for packages. */
const resolveLocal = (from: string, spec: string): string | undefined =>
  spec.startsWith('.') ? resolve(dirname(from), spec).replace(/\.js$/, '.ts') : undefined;

/** Calls that send something to a client: Socket.IO's emit family, or send() on a socket or server. */
const EMIT_CALLS = [/\.(?:emit|emitWithAck|serverSideEmit)\s*\(/g, /\b\w*(?:socket|Socket|io)\s*\.\s*send\s*\(/g];
const emitsIn = (text: string): string[] => {
  const code = withoutComments(text);
  return EMIT_CALLS.flatMap((re) => [...code.matchAll(re)].map((m) => m[0]));
};

/** One import cycle of the graph (its files in order, the first repeated at the end), or undefined. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

const files = sourceFiles(SRC);
const texts = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));

describe('architecture of src/', () => {
  it('reads the whole tree, and the walkers see what is there', () => {
    expect(files.length).toBeGreaterThan(30);
    expect(emitsIn(texts.get(join(SRC, 'transport/broadcaster.ts'))!).length).toBeGreaterThan(0);
    expect(importsOf(texts.get(join(SRC, 'app.ts'))!).map((i) => i.spec)).toContain('./core/chat.js');
    expect(importsOf("import type {\n  A,\n  B,\n} from './a.js';\nexport { c } from '../c.js';\nimport 'side';\nawait import('./lazy.js');")).toEqual([
      { spec: './a.js', typeOnly: true },
      { spec: '../c.js', typeOnly: false },
      { spec: 'side', typeOnly: false },
      { spec: './lazy.js', typeOnly: false },
    ]);
    expect(emitsIn("socket.emit('x'); io.to(r).volatile.emit('y'); socket.send('z'); // io.emit('comment')")).toHaveLength(3);
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toBeUndefined();
  });

  it('no file but the Broadcaster implementation emits to clients', () => {
    const offenders = files
      .filter((f) => !(rel(f) in EMITTERS))
      .flatMap((f) => emitsIn(texts.get(f)!).map((call) => `${rel(f)}: ${call}`));
    expect(offenders).toEqual([]);
  });

  it('src/core imports only ports/, the protocol, its own files and type-only pino', () => {
    const core = join(SRC, 'core');
    const allowed = (file: string, { spec, typeOnly }: Import) => {
      const local = resolveLocal(file, spec);
      if (local) return local.startsWith(`${core}/`) || local.startsWith(join(SRC, 'ports') + '/');
      return CORE_PACKAGES.has(spec) || (typeOnly && CORE_TYPE_ONLY_PACKAGES.has(spec));
    };
    const offenders = files
      .filter((f) => f.startsWith(`${core}/`))
      .flatMap((f) => importsOf(texts.get(f)!).filter((i) => !allowed(f, i)).map((i) => `${rel(f)}: ${i.spec}`));
    expect(offenders).toEqual([]);
  });

  it('has no import cycle', () => {
    const graph = new Map(
      files.map((f) => [f, importsOf(texts.get(f)!).flatMap((i) => resolveLocal(f, i.spec) ?? []).filter((target) => texts.has(target))]),
    );
    expect([...graph.values()].flat().length).toBeGreaterThan(50);
    expect(findCycle(graph)?.map(rel)).toBeUndefined();
  });
});
