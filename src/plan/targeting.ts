/**
 * GPU-aware targeting (pure): a manifest component may list variants, each
 * with `requires` (`nvidiaDriver: ">=570.26"`, `os`, `arch`); the first one
 * this machine fits is chosen before anything is downloaded. When none fits,
 * the reason names each variant and what it needed.
 */

/** What a variant needs of the machine. Every key given must hold. */
export interface Requires {
  /** Driver version constraint: comparisons separated by spaces, all must hold (`">=560 <570"`, `"575.51.03"`). */
  nvidiaDriver?: string;
  /** `process.platform`: `linux`, `win32`, `darwin`. */
  os?: string;
  /** `process.arch`: `x64`, `arm64`. */
  arch?: string;
}

/** The facts targeting looks at; see src/plan/machine-facts.ts for how they are read. */
export interface TargetFacts {
  os: string;
  arch: string;
  /** The NVIDIA driver version, e.g. `575.51.03`; absent when no driver was found. */
  nvidiaDriver?: string;
  /** Why the driver is unknown (each place looked at), for messages. */
  nvidiaDriverError?: string;
}

const COMPARISON = /^(>=|<=|>|<|=|==)?\s*(\d+(?:\.\d+){0,3})$/;

/** A driver constraint is well-formed: one or more `>=N.N` comparisons. Used by the manifest schema. */
export function isDriverConstraint(s: string): boolean {
  const parts = s.trim().split(/\s+/);
  return parts.length > 0 && parts.every((p) => COMPARISON.test(p));
}

/** Compares dotted numeric versions (`570.26` < `570.133.07`); missing parts count as 0. */
export function compareDriverVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** True when `version` meets every comparison of `constraint`. A malformed constraint never holds. */
export function driverSatisfies(version: string, constraint: string): boolean {
  if (!isDriverConstraint(constraint)) return false;
  return constraint.trim().split(/\s+/).every((p) => {
    const m = COMPARISON.exec(p)!;
    const c = compareDriverVersions(version, m[2]!);
    switch (m[1]) {
      case '>=': return c >= 0;
      case '<=': return c <= 0;
      case '>': return c > 0;
      case '<': return c < 0;
      default: return c === 0;
    }
  });
}

/** What in `requires` this machine does not meet, in words; empty when it fits. */
export function unmet(requires: Requires | undefined, facts: TargetFacts): string[] {
  const out: string[] = [];
  if (!requires) return out;
  if (requires.os !== undefined && requires.os !== facts.os) out.push(`os ${requires.os} (this machine: ${facts.os})`);
  if (requires.arch !== undefined && requires.arch !== facts.arch) out.push(`arch ${requires.arch} (this machine: ${facts.arch})`);
  if (requires.nvidiaDriver !== undefined) {
    if (facts.nvidiaDriver === undefined) out.push(`nvidiaDriver ${requires.nvidiaDriver} (no NVIDIA driver found${facts.nvidiaDriverError ? `: ${facts.nvidiaDriverError}` : ''})`);
    else if (!driverSatisfies(facts.nvidiaDriver, requires.nvidiaDriver)) out.push(`nvidiaDriver ${requires.nvidiaDriver} (this machine: ${facts.nvidiaDriver})`);
  }
  return out;
}

export type TargetChoice<V> = { variant: V; index: number } | { reason: string };

/**
 * The first variant whose `requires` this machine meets, or why none does.
 *
 * @example chooseVariant('cuda-libs', [{ name: 'cu128', requires: { nvidiaDriver: '>=570.26' } }, { name: 'cu126', requires: { nvidiaDriver: '>=560' } }], facts)
 */
export function chooseVariant<V extends { name: string; requires?: Requires }>(component: string, variants: readonly V[], facts: TargetFacts): TargetChoice<V> {
  const why: string[] = [];
  for (const [index, v] of variants.entries()) {
    const missing = unmet(v.requires, facts);
    if (missing.length === 0) return { variant: v, index };
    why.push(`${v.name} needs ${missing.join(' and ')}`);
  }
  return { reason: `no variant of ${component} fits this machine: ${why.join('; ')}` };
}
