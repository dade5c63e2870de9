/** Latency histogram with ~1 % resolution over µs: bucket = floor(ln(1 + µs) · 100). */
export const BUCKETS = 3200;

export const bucketOf = (us: number): number => Math.min(BUCKETS - 1, Math.max(0, Math.floor(Math.log1p(us) * 100)));
/** Upper edge of a bucket in µs. */
export const valueOf = (bucket: number): number => Math.expm1((bucket + 1) / 100);

export function toSparse(h: Uint32Array): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < h.length; i++) if (h[i]) out.push([i, h[i]!]);
  return out;
}

export function merge(parts: [number, number][][]): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of parts) for (const [b, c] of p) m.set(b, (m.get(b) ?? 0) + c);
  return m;
}

/** Percentiles (0–100) in milliseconds; undefined when empty. */
export function percentiles(h: Map<number, number>, ps: number[]): (number | undefined)[] {
  const entries = [...h.entries()].sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((s, [, c]) => s + c, 0);
  if (total === 0) return ps.map(() => undefined);
  return ps.map((p) => {
    const want = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (const [b, c] of entries) {
      seen += c;
      if (seen >= want) return valueOf(b) / 1000;
    }
    return valueOf(entries.at(-1)![0]) / 1000;
  });
}
