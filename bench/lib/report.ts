import type { SystemName } from './systems.js';

export interface StepResult {
  step: number;
  /** Target sent rate (messages per second, all senders). */
  rate: number;
  sentPerS: number;
  deliveredPerS: number;
  expected: number;
  delivered: number;
  ratio: number;
  p50?: number | undefined;
  p99?: number | undefined;
  p999?: number | undefined;
  max?: number | undefined;
  /** Deliveries per frame (1 without batching). */
  perFrame: number;
  /** CPU % (100 = one core) per watched process, and RSS bytes at the end of the step. */
  cpu: Record<string, number>;
  rss: Record<string, number>;
  serverCpuPct: number;
  /** The part of serverCpuPct spent in the kernel (system time: mostly socket writes). */
  serverSysPct: number;
  redisCpuPct: number;
  pgCpuPct: number;
  loadgenCpuPct: number;
  /** (instances + Redis + PostgreSQL backends) CPU-µs per delivered message. */
  cpuUsPerDelivery: number;
  /** The same, instances only. */
  instanceCpuUsPerDelivery: number;
  acksOk: number;
  acksErr: number;
  dropped: number;
  loadAvg: number;
  pass: boolean;
  reason: string;
  /** The measured window on the monotonic clock (µs), to cut a --profile to it (bench/profile-summary.ts --from --to). */
  monotonicUs?: [number, number];
}

export interface IdleResult {
  connections: number;
  rssPerConnBytes: number;
  handshakesPerS: number;
  failed: number;
}

export interface RepResult {
  system: SystemName;
  rep: number;
  steps: StepResult[];
  maxDeliveredPerS: number;
  maxSentPerS: number;
  at200?: StepResult | undefined;
  idle: IdleResult[];
  error?: string;
}

export interface Summary {
  system: SystemName;
  reps: number;
  maxDeliveredPerS: number;
  maxSentPerS: number;
  cpuUsPerDeliveryAt200?: number | undefined;
  instanceCpuUsPerDeliveryAt200?: number | undefined;
  p99At200?: number | undefined;
  p50At200?: number | undefined;
  rssPerIdleConn: Record<string, number>;
  handshakesPerS?: number | undefined;
  /** Median per step rate over the reps that ran it. */
  steps: StepResult[];
}

export const median = (xs: number[]): number => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
const medianOpt = (xs: (number | undefined)[]): number | undefined => {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? median(v) : undefined;
};

export function summarize(system: SystemName, reps: RepResult[]): Summary {
  const mine = reps.filter((r) => r.system === system);
  const rates = [...new Set(mine.flatMap((r) => r.steps.map((s) => s.rate)))].sort((a, b) => a - b);
  const steps: StepResult[] = rates.map((rate, i) => {
    const at = mine.map((r) => r.steps.find((s) => s.rate === rate)).filter((s): s is StepResult => s !== undefined);
    const med = (f: (s: StepResult) => number) => median(at.map(f));
    const medO = (f: (s: StepResult) => number | undefined) => medianOpt(at.map(f));
    const keys = [...new Set(at.flatMap((s) => Object.keys(s.cpu)))];
    return {
      step: i + 1,
      rate,
      sentPerS: med((s) => s.sentPerS),
      deliveredPerS: med((s) => s.deliveredPerS),
      expected: med((s) => s.expected),
      delivered: med((s) => s.delivered),
      ratio: med((s) => s.ratio),
      p50: medO((s) => s.p50),
      p99: medO((s) => s.p99),
      p999: medO((s) => s.p999),
      max: medO((s) => s.max),
      perFrame: med((s) => s.perFrame),
      cpu: Object.fromEntries(keys.map((k) => [k, med((s) => s.cpu[k] ?? NaN)])),
      rss: Object.fromEntries(keys.map((k) => [k, med((s) => s.rss[k] ?? NaN)])),
      serverCpuPct: med((s) => s.serverCpuPct),
      serverSysPct: med((s) => s.serverSysPct),
      redisCpuPct: med((s) => s.redisCpuPct),
      pgCpuPct: med((s) => s.pgCpuPct),
      loadgenCpuPct: med((s) => s.loadgenCpuPct),
      cpuUsPerDelivery: med((s) => s.cpuUsPerDelivery),
      instanceCpuUsPerDelivery: med((s) => s.instanceCpuUsPerDelivery),
      acksOk: med((s) => s.acksOk),
      acksErr: med((s) => s.acksErr),
      dropped: med((s) => s.dropped),
      loadAvg: med((s) => s.loadAvg),
      pass: at.filter((s) => s.pass).length * 2 > at.length,
      reason: `${at.filter((s) => s.pass).length}/${at.length} reps passed${at.find((s) => !s.pass) ? `; ${at.find((s) => !s.pass)!.reason}` : ''}`,
    };
  });
  const idleCounts = [...new Set(mine.flatMap((r) => r.idle.map((i) => i.connections)))];
  const hs = mine.flatMap((r) => r.idle.map((i) => i.handshakesPerS)).filter((x) => x > 0);
  return {
    system,
    reps: mine.length,
    maxDeliveredPerS: median(mine.map((r) => r.maxDeliveredPerS)),
    maxSentPerS: median(mine.map((r) => r.maxSentPerS)),
    cpuUsPerDeliveryAt200: medianOpt(mine.map((r) => r.at200?.cpuUsPerDelivery)),
    instanceCpuUsPerDeliveryAt200: medianOpt(mine.map((r) => r.at200?.instanceCpuUsPerDelivery)),
    p99At200: medianOpt(mine.map((r) => r.at200?.p99)),
    p50At200: medianOpt(mine.map((r) => r.at200?.p50)),
    rssPerIdleConn: Object.fromEntries(idleCounts.map((n) => [String(n), median(mine.flatMap((r) => r.idle.filter((i) => i.connections === n).map((i) => i.rssPerConnBytes)))])),
    handshakesPerS: hs.length ? median(hs) : undefined,
    steps,
  };
}

const f = (x: number | undefined, d = 0) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d));

export function table(summaries: Summary[]): string {
  const lines: string[] = [];
  const head = ['system', 'sent/s', 'deliv/s', 'ratio', 'p50', 'p99', 'p99.9', 'max', 'srv CPU%', 'kernel%', 'redis%', 'pg%', 'gen%', 'µs/deliv', 'msg/frame', 'RSS MB', 'load', 'pass'];
  const rows: string[][] = [head];
  for (const s of summaries) {
    for (const st of s.steps) {
      const rss = Object.entries(st.rss).filter(([k]) => !k.startsWith('loadgen')).reduce((a, [, v]) => a + (Number.isFinite(v) ? v : 0), 0);
      rows.push([
        s.system,
        f(st.sentPerS),
        f(st.deliveredPerS),
        `${(st.ratio * 100).toFixed(2)}%`,
        f(st.p50, 1),
        f(st.p99, 1),
        f(st.p999, 1),
        f(st.max, 0),
        f(st.serverCpuPct),
        f(st.serverSysPct),
        f(st.redisCpuPct),
        f(st.pgCpuPct),
        f(st.loadgenCpuPct),
        f(st.cpuUsPerDelivery, 1),
        f(st.perFrame, 2),
        f(rss / 2 ** 20),
        f(st.loadAvg, 1),
        st.pass ? 'yes' : 'NO',
      ]);
    }
  }
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) lines.push(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  lines.push('');
  lines.push('latency in ms; CPU % of one core; µs/deliv = server-side CPU (instances + Redis + PostgreSQL) per delivered message');
  lines.push('');
  const hd = ['system', 'max deliv/s', 'at sent/s', 'µs/deliv@200', 'inst µs@200', 'p50@200', 'p99@200', 'KB/idle conn', 'handshakes/s'];
  const hrows = [hd];
  for (const s of summaries) {
    hrows.push([
      s.system,
      f(s.maxDeliveredPerS),
      f(s.maxSentPerS),
      f(s.cpuUsPerDeliveryAt200, 1),
      f(s.instanceCpuUsPerDeliveryAt200, 1),
      f(s.p50At200, 1),
      f(s.p99At200, 1),
      Object.entries(s.rssPerIdleConn).map(([n, v]) => `${f(v / 1024, 1)}@${n}`).join(' ') || '–',
      f(s.handshakesPerS),
    ]);
  }
  const hw = hd.map((_, i) => Math.max(...hrows.map((r) => r[i]!.length)));
  for (const r of hrows) lines.push(r.map((c, i) => (i === 0 ? c.padEnd(hw[i]!) : c.padStart(hw[i]!))).join('  '));
  return lines.join('\n');
}

const COLORS: Record<string, string> = { switchboard: '#1f77b4', reference: '#d62728', raw: '#7f7f7f' };

/** A small self-contained SVG line chart (no scripts, no CDN). */
export function lineChart(opts: {
  title: string;
  xLabel: string;
  yLabel: string;
  series: { name: string; color: string; dashed?: boolean; points: [number, number][] }[];
  logY?: boolean;
  hLine?: { y: number; label: string };
}): string {
  const W = 640;
  const H = 360;
  const L = 64;
  const R = 150;
  const T = 36;
  const B = 48;
  const all = opts.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0));
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]).concat(opts.hLine ? [opts.hLine.y] : []);
  const xMax = Math.max(1, ...xs) * 1.05;
  let yMin = opts.logY ? Math.max(0.1, Math.min(...ys) * 0.8) : 0;
  let yMax = Math.max(...ys, 1) * 1.1;
  if (!Number.isFinite(yMin)) yMin = 0.1;
  if (!Number.isFinite(yMax)) yMax = 1;
  const sx = (x: number) => L + (x / xMax) * (W - L - R);
  const sy = (y: number) =>
    opts.logY
      ? T + (1 - (Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * (H - T - B)
      : T + (1 - y / yMax) * (H - T - B);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(opts.title)}</text>`);
  // Axes and grid.
  for (let i = 0; i <= 5; i++) {
    const x = (xMax / 5) * i;
    out.push(`<line x1="${sx(x)}" y1="${T}" x2="${sx(x)}" y2="${H - B}" stroke="#eee"/><text x="${sx(x)}" y="${H - B + 14}" text-anchor="middle">${fmt(x)}</text>`);
  }
  const yTicks = opts.logY ? logTicks(yMin, yMax) : Array.from({ length: 6 }, (_, i) => (yMax / 5) * i);
  for (const y of yTicks) {
    out.push(`<line x1="${L}" y1="${sy(y)}" x2="${W - R}" y2="${sy(y)}" stroke="#eee"/><text x="${L - 6}" y="${sy(y) + 4}" text-anchor="end">${fmt(y)}</text>`);
  }
  out.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(opts.yLabel)}</text>`);
  if (opts.hLine) {
    out.push(`<line x1="${L}" y1="${sy(opts.hLine.y)}" x2="${W - R}" y2="${sy(opts.hLine.y)}" stroke="#999" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${W - R - 4}" y="${sy(opts.hLine.y) - 4}" text-anchor="end" fill="#666">${esc(opts.hLine.label)}</text>`);
  }
  opts.series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0));
    if (pts.length) {
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dashed ? 'stroke-dasharray="5 4"' : ''} points="${pts.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of pts) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    }
    const ly = T + 14 + i * 16;
    out.push(`<line x1="${W - R + 10}" y1="${ly - 4}" x2="${W - R + 30}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2" ${s.dashed ? 'stroke-dasharray="5 4"' : ''}/><text x="${W - R + 34}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number) => (v === 0 ? '0' : v >= 10_000 ? `${(v / 1000).toFixed(0)}k` : v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2));
function logTicks(min: number, max: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) for (const m of [1, 2, 5]) {
    const v = m * 10 ** e;
    if (v >= min && v <= max) out.push(v);
  }
  return out;
}

export function charts(summaries: Summary[]): { latency: string; cpu: string; cpuPerDelivery: string } {
  const color = (n: string) => COLORS[n] ?? '#2ca02c';
  const latency = lineChart({
    title: 'Latency vs load (median of reps)',
    xLabel: 'sent messages / s',
    yLabel: 'send → receive latency, ms (log)',
    logY: true,
    hLine: { y: 100, label: 'p99 limit 100 ms' },
    series: summaries.flatMap((s) => [
      { name: `${s.system} p99`, color: color(s.system), points: s.steps.map((st) => [st.sentPerS, st.p99 ?? NaN] as [number, number]) },
      { name: `${s.system} p50`, color: color(s.system), dashed: true, points: s.steps.map((st) => [st.sentPerS, st.p50 ?? NaN] as [number, number]) },
    ]),
  });
  const cpu = lineChart({
    title: 'Server-side CPU vs load (instances + Redis + PostgreSQL)',
    xLabel: 'sent messages / s',
    yLabel: 'CPU % (100 = one core)',
    series: summaries.map((s) => ({
      name: s.system,
      color: color(s.system),
      points: s.steps.map((st) => [st.sentPerS, st.serverCpuPct + st.redisCpuPct + st.pgCpuPct] as [number, number]),
    })),
  });
  const cpuPerDelivery = lineChart({
    title: 'Server-side CPU per delivered message vs load',
    xLabel: 'sent messages / s',
    yLabel: 'CPU-µs per delivery',
    series: summaries.map((s) => ({ name: s.system, color: color(s.system), points: s.steps.map((st) => [st.sentPerS, st.cpuUsPerDelivery] as [number, number]) })),
  });
  return { latency, cpu, cpuPerDelivery };
}

export function html(opts: { title: string; meta: Record<string, unknown>; summaries: Summary[]; tableText: string; headline: string }): string {
  const c = charts(opts.summaries);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(opts.title)}</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}figure{display:inline-block;margin:0.5em}</style>
</head><body>
<h1>${esc(opts.title)}</h1>
<p><strong>${esc(opts.headline)}</strong></p>
<pre>${esc(JSON.stringify(opts.meta, null, 2))}</pre>
<figure>${c.latency}</figure>
<figure>${c.cpu}</figure>
<figure>${c.cpuPerDelivery}</figure>
<h2>Table (medians over reps)</h2>
<pre>${esc(opts.tableText)}</pre>
</body></html>
`;
}
