/**
 * Summarises V8 .cpuprofile files (from `npm run bench -- --profile`): self time by function and by
 * package/file, so an optimisation starts from evidence.
 *   Usage: tsx bench/profile-summary.ts [--from µs --to µs] <files…>
 * `--from`/`--to` keep the samples of one measured step (`monotonicUs` of a step in results.json).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: opts, positionals } = parseArgs({ options: { from: { type: 'string' }, to: { type: 'string' } }, allowPositionals: true });
const from = opts.from ? Number(opts.from) : -Infinity;
const to = opts.to ? Number(opts.to) : Infinity;

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

const byFn = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  let t = p.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (t < from || t > to) continue;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
  }
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    if (!us) continue;
    const url = n.callFrame.url.replace(/^file:\/\//, '');
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url.includes('/dist/') ? `switchboard:${url.split('/dist/')[1]}` : url || `(${n.callFrame.functionName || 'native'})`);
    const name = `${n.callFrame.functionName || '(anonymous)'}  ${pkg}${url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    byFn.set(name, (byFn.get(name) ?? 0) + us);
    byFile.set(pkg, (byFile.get(pkg) ?? 0) + us);
    total += us;
  }
}
const top = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((v / total) * 100).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`)
    .join('\n');
console.log(`total sampled ${(total / 1000).toFixed(0)} ms\n\n— by package / file —\n${top(byFile, 25)}\n\n— by function (self) —\n${top(byFn, 40)}`);
