/**
 * A strict parser for Prometheus text format 0.0.4, for tests: every line is
 * a HELP, a TYPE or a sample; label values are unescaped; a sample must
 * belong to the metric of the last TYPE line (histograms: `_bucket`, `_sum`,
 * `_count`); histogram buckets are cumulative and end in `le="+Inf"` equal to
 * `_count`. Throws with the line number on anything else.
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  help?: string;
  type: string;
  samples: PromSample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const HELP_RE = new RegExp(`^# HELP (${NAME}) (.*)$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_RE = new RegExp(`^(${NAME})(\\{.*\\})? (\\S+)(?: (-?\\d+))?$`);
const VALUE_RE = /^(?:[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/;

function parseValue(s: string, line: number): number {
  if (!VALUE_RE.test(s)) throw new Error(`line ${line}: bad value ${JSON.stringify(s)}`);
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

function parseLabels(s: string, line: number): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 1; // after '{'
  while (i < s.length - 1) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(s.slice(i));
    if (!m) throw new Error(`line ${line}: bad label at ${JSON.stringify(s.slice(i))}`);
    i += m[0].length;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const n = s[i + 1];
        if (n === '\\') v += '\\';
        else if (n === '"') v += '"';
        else if (n === 'n') v += '\n';
        else throw new Error(`line ${line}: bad escape \\${n}`);
        i += 2;
        continue;
      }
      if (c === '\n') throw new Error(`line ${line}: raw newline in label value`);
      v += c;
      i++;
    }
    i++; // closing quote
    if (m[1]! in out) throw new Error(`line ${line}: duplicate label ${m[1]}`);
    out[m[1]!] = v;
    if (s[i] === ',') i++;
    else if (i !== s.length - 1) throw new Error(`line ${line}: expected , or } at ${JSON.stringify(s.slice(i))}`);
  }
  return out;
}

export function parsePromText(text: string): PromFamily[] {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('text must end with a newline');
  const families: PromFamily[] = [];
  const seen = new Set<string>();
  let help: { name: string; text: string } | undefined;
  let cur: PromFamily | undefined;
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((l, idx) => {
    const ln = idx + 1;
    let m: RegExpExecArray | null;
    if ((m = HELP_RE.exec(l))) {
      help = { name: m[1]!, text: m[2]! };
      return;
    }
    if ((m = TYPE_RE.exec(l))) {
      if (seen.has(m[1]!)) throw new Error(`line ${ln}: second TYPE for ${m[1]}`);
      seen.add(m[1]!);
      cur = { name: m[1]!, type: m[2]!, samples: [], ...(help?.name === m[1] ? { help: help!.text } : {}) };
      families.push(cur);
      return;
    }
    if (l.startsWith('#')) throw new Error(`line ${ln}: unexpected comment ${JSON.stringify(l)}`);
    if (!(m = SAMPLE_RE.exec(l))) throw new Error(`line ${ln}: not a sample: ${JSON.stringify(l)}`);
    if (!cur) throw new Error(`line ${ln}: sample before any TYPE`);
    const name = m[1]!;
    const allowed = cur.type === 'histogram' ? [`${cur.name}_bucket`, `${cur.name}_sum`, `${cur.name}_count`] : [cur.name];
    if (!allowed.includes(name)) throw new Error(`line ${ln}: sample ${name} does not belong to ${cur.name} (${cur.type})`);
    const labels = m[2] ? parseLabels(m[2], ln) : {};
    if (name.endsWith('_bucket') && labels.le === undefined) throw new Error(`line ${ln}: bucket without le`);
    cur.samples.push({ name, labels, value: parseValue(m[3]!, ln) });
  });
  for (const f of families.filter((f) => f.type === 'histogram')) checkHistogram(f);
  return families;
}

function checkHistogram(f: PromFamily): void {
  const groups = new Map<string, PromSample[]>();
  for (const s of f.samples) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const [key, ss] of groups) {
    const buckets = ss.filter((s) => s.name.endsWith('_bucket'));
    const count = ss.find((s) => s.name.endsWith('_count'));
    if (!count || !ss.some((s) => s.name.endsWith('_sum'))) throw new Error(`${f.name}${key}: missing _sum or _count`);
    const last = buckets.at(-1);
    if (!last || last.labels.le !== '+Inf' || last.value !== count.value) throw new Error(`${f.name}${key}: last bucket must be le="+Inf" equal to _count`);
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${f.name}${key}: buckets not cumulative`);
      if (parseValue(buckets[i]!.labels.le!, 0) <= parseValue(buckets[i - 1]!.labels.le!, 0)) throw new Error(`${f.name}${key}: le not increasing`);
    }
  }
}

/** The value of one sample, or undefined. */
export function sampleValue(fams: PromFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of fams) {
    for (const s of f.samples) {
      if (s.name === name && Object.keys(labels).every((k) => s.labels[k] === labels[k]) && Object.keys(s.labels).length === Object.keys(labels).length) return s.value;
    }
  }
  return undefined;
}
