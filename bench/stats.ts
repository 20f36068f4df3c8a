/**
 * Small statistics for interleaved A/B runs: median and spread (min..max),
 * and the ratio of two medians. Timings on a shared machine are only
 * meaningful as ratios against a baseline measured in the same run.
 */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** "median (min–max)" with `digits` decimals. */
export function summary(xs: readonly number[], digits = 0): string {
  if (xs.length === 0) return 'n/a';
  const f = (x: number) => x.toFixed(digits);
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

/**
 * Median of the per-repetition ratios a[i]/b[i] of paired runs, with their
 * range: pairing cancels much of the drift from other load on the machine.
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): { median: number; min: number; max: number } {
  const n = Math.min(a.length, b.length);
  const r = Array.from({ length: n }, (_, i) => a[i]! / b[i]!);
  return { median: median(r), min: Math.min(...r), max: Math.max(...r) };
}

export function ratioText(r: { median: number; min: number; max: number }): string {
  return `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
}
