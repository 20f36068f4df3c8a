/** "Did you mean": the closest known word to a mistyped one, if it is close enough to be a typo. */

export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The known word nearest to `word` (case-insensitive), when at most a third
 * of its letters (at least one, at most three) differ; otherwise undefined.
 *
 * @example
 * suggest('sha256Ulr', ['sha256', 'sha256Url', 'url']) // 'sha256Url'
 */
export function suggest(word: string, known: Iterable<string>): string | undefined {
  const max = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD && d <= max) {
      best = k;
      bestD = d;
    }
  }
  return best;
}
