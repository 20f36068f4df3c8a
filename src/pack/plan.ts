/**
 * Splits the entries of a one-folder build into components (pure) and checks
 * that lander's installer will accept every archive before any is written:
 * entry names, case collisions and symlinks, judged by the same functions
 * the installer uses (src/archive/). Directory entries go into every
 * component that has something below them, so each archive extracts on its
 * own and the generation merges the shared folders.
 */
import path from 'node:path';
import { checkEntryPath, collisionKey, parentPaths, resolveLinkTarget } from '../install/entry-path.ts';
import { LinkTable } from '../install/link-table.ts';
import { PackError } from '../base/errors.ts';
import { compileRules, componentNames, type RuleSet } from './rules.ts';
import type { SourceEntry } from './walk.ts';

export interface ComponentPlan {
  name: string;
  /** In archive order: parents before children, names sorted. */
  entries: SourceEntry[];
  /** Files, symlinks and empty folders the rules gave this component. */
  leaves: number;
  /** File bytes. */
  bytes: number;
}

export interface PackProblem {
  path: string;
  component?: string;
  kind: 'link' | 'path';
  message: string;
}

/** Most problems named in the error message; `data.problems` has them all. */
const SHOWN = 10;

/**
 * @param entries from walkSource, in its order
 * @throws PackError `ERR_PACK_EMPTY` when a component gets nothing,
 *   `ERR_PACK_LINK` / `ERR_PACK_PATH` when lander would refuse an archive.
 */
export function planPack(entries: readonly SourceEntry[], rs: RuleSet): ComponentPlan[] {
  const classify = compileRules(rs);
  const names = componentNames(rs);
  const plans = new Map(names.map((n) => [n, { name: n, entries: [] as SourceEntry[], leaves: 0, bytes: 0 }]));
  const needs = new Map(names.map((n) => [n, new Set<string>()])); // folders each component must carry
  const owner = new Map<string, string>(); // leaf path → component
  entries.forEach((e, i) => {
    const next = entries[i + 1];
    const empty = e.type === 'directory' && !(next && next.path.startsWith(`${e.path}/`));
    if (e.type === 'directory' && !empty) return;
    const c = classify(e.path);
    owner.set(e.path, c);
    const plan = plans.get(c)!;
    plan.leaves++;
    plan.bytes += e.size;
    for (const p of parentPaths(e.path)) needs.get(c)!.add(p);
  });
  for (const e of entries) {
    const c = owner.get(e.path);
    if (c !== undefined) plans.get(c)!.entries.push(e);
    else for (const n of names) if (needs.get(n)!.has(e.path)) plans.get(n)!.entries.push(e);
  }
  const empty = names.filter((n) => plans.get(n)!.leaves === 0);
  if (empty.length > 0) {
    throw new PackError('ERR_PACK_EMPTY', `Cannot pack: ${empty.map((n) => `component ${n}`).join(' and ')} would be empty; no path in the folder matches ${empty.length > 1 ? 'their' : 'its'} rules (wrong folder, or a build without them?)`, { data: { components: empty } });
  }
  const out = [...plans.values()];
  const treeProblems = treeLinkProblems(entries);
  const flagged = new Set(treeProblems.map((p) => p.path));
  const problems = [...treeProblems, ...out.flatMap((p) => archiveProblems(p, flagged))];
  if (problems.length > 0) {
    const code = problems.some((p) => p.kind === 'link') ? 'ERR_PACK_LINK' : 'ERR_PACK_PATH';
    const list = problems.slice(0, SHOWN).map((p) => `${JSON.stringify(p.path)}${p.component ? ` (${p.component})` : ''} ${p.message}`).join('; ');
    const more = problems.length > SHOWN ? `; and ${problems.length - SHOWN} more` : '';
    throw new PackError(code, `Cannot pack: lander would refuse ${problems.length === 1 ? 'this entry' : `these ${problems.length} entries`}: ${list}${more}`, { data: { problems } });
  }
  return out;
}

/** Symlinks resolved against every link of the folder, as they will be in the installed generation. */
function treeLinkProblems(entries: readonly SourceEntry[]): PackProblem[] {
  const links = new Map(entries.filter((e) => e.type === 'symlink').map((e) => [e.path, e.linkname!]));
  const problems: PackProblem[] = [];
  for (const [p, target] of links) {
    const dir = path.posix.dirname(p);
    const r = resolveLinkTarget(dir === '.' ? '' : dir, target, links);
    if (!r.ok) problems.push({ path: p, kind: 'link', message: `is a symlink that ${r.reason.replace("component's folder", 'folder')}` });
  }
  return problems;
}

/**
 * What the installer checks in one archive on its own: names, case
 * collisions, and each symlink against the links of this archive only. A
 * link that resolves inside the whole folder but not here walks through a
 * link packed in another component.
 */
function archiveProblems(plan: ComponentPlan, flagged: ReadonlySet<string>): PackProblem[] {
  const problems: PackProblem[] = [];
  const table = new LinkTable();
  const keys = new Map<string, string>();
  for (const e of plan.entries) {
    const checked = checkEntryPath(e.path);
    if (!checked.ok || checked.path !== e.path) {
      problems.push({ path: e.path, component: plan.name, kind: 'path', message: checked.ok ? 'is not a normal relative path' : checked.reason });
      continue;
    }
    const key = collisionKey(e.path);
    const prev = keys.get(key);
    if (prev !== undefined) problems.push({ path: e.path, component: plan.name, kind: 'path', message: `collides with "${prev}" on a case-insensitive or normalising file system` });
    keys.set(key, e.path);
    if (e.type === 'symlink' && !flagged.has(e.path)) {
      const reason = table.add(e.path, e.linkname!);
      if (reason) problems.push({ path: e.path, component: plan.name, kind: 'link', message: `is a symlink that, checked within its own archive as lander install does, ${reason} (it resolves through a link packed in another component; move both into one component with a rule)` });
    }
  }
  return problems;
}
