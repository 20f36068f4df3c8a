/**
 * The symlinks created so far in one archive, with a reverse index of the
 * paths each link's resolution walked through. A later link planted on such
 * a path changes where the earlier link points (`a -> d/b/..`, then
 * `d/b -> ..`), so those earlier links are checked again.
 */
import { resolveLinkTarget } from './entry-path.ts';

export class LinkTable {
  /** Normalised link path → raw target. */
  readonly links = new Map<string, string>();
  private readonly walkedBy = new Map<string, Set<string>>();
  private readonly maxPathLength: number;

  constructor(opts: { maxPathLength?: number } = {}) {
    this.maxPathLength = opts.maxPathLength ?? 4096;
  }

  has(path: string): boolean {
    return this.links.has(path);
  }

  /**
   * Adds the link at `path` if it and every earlier link walking through
   * `path` still resolve inside the tree; returns the reason otherwise.
   */
  add(path: string, target: string): string | undefined {
    const reason = this.check(path, target);
    if (reason) return reason;
    this.links.set(path, target);
    const dependents = this.walkedBy.get(path);
    if (dependents) {
      for (const dep of dependents) {
        if (dep === path) continue;
        const r = this.check(dep, this.links.get(dep)!);
        if (r) {
          this.links.delete(path);
          return `makes the earlier link "${dep}" escape: it ${r}`;
        }
      }
    }
    return undefined;
  }

  private check(path: string, target: string): string | undefined {
    const slash = path.lastIndexOf('/');
    const dir = slash === -1 ? '' : path.slice(0, slash);
    const walked: string[] = [];
    const r = resolveLinkTarget(dir, target, this.links, { maxPathLength: this.maxPathLength, onVisit: (p) => walked.push(p) });
    if (!r.ok) return r.reason;
    for (const p of walked) {
      let s = this.walkedBy.get(p);
      if (!s) this.walkedBy.set(p, (s = new Set()));
      s.add(path);
    }
    return undefined;
  }
}

/**
 * Checks the symlinks of several trees merged into one folder (a
 * generation), as the kernel will resolve them there: each tree was checked
 * alone, but a link from one can walk through a link from another
 * (HOSTILE-INPUT #20: `d/a -> b/../..` is harmless alone, and escapes once
 * another component adds `d/b -> ..`). Returns the first offending link.
 *
 * @example checkMergedLinks([{ path: 'd/a', target: 'b/../..' }, { path: 'd/b', target: '..' }])
 *   // { path: 'd/b', reason: 'makes the earlier link "d/a" escape: ...' }
 */
export function checkMergedLinks(
  links: Iterable<{ path: string; target: string }>,
  opts: { maxPathLength?: number } = {},
): { path: string; reason: string } | undefined {
  const table = new LinkTable(opts);
  for (const l of links) {
    const reason = table.add(l.path, l.target);
    if (reason) return { path: l.path, reason };
  }
  return undefined;
}
