/**
 * Which files of a chunked install are re-read and hashed against the
 * index's content hash before the generation is built (pure).
 *
 * A file written only from fetched members needs no second read: the
 * worker checks each member's SHA-256 against the trusted index before it
 * writes a byte of it, the members tile the tar stream (decodeIndex refuses
 * an index whose members do not), and here the fetched pieces must tile
 * the file exactly, from 0 to its size. Its bytes are then the verified
 * tar bytes of its data region, which the index's content hash was
 * computed from by the same trusted packer; the index itself is used only
 * after its own SHA-256 matched a pinned, sidecar or signed digest.
 *
 * Every file with a byte from anywhere else is hashed: pieces copied from
 * installed store entries (their files could have changed on disk since)
 * and pieces resumed from an interrupted run's tree. So is any file the
 * fetched pieces do not tile, which then fails its check. Hard-linked files
 * are the store's own, recorded with their hash when they were installed.
 */
import type { ReusePlan } from './reuse-plan.ts';
import type { TreeOp, TreePlan } from './tree-plan.ts';

export type FileOp = Extract<TreeOp, { kind: 'file' }>;

export interface FileChecks {
  /** Files to hash, with a reason for the log. */
  hash: FileOp[];
  /** Files proven by their verified members alone. */
  proven: number;
}

export function filesToHash(tree: TreePlan, plan: ReusePlan, resumed: ReadonlySet<string>): FileChecks {
  const linked = new Set(plan.links.map((l) => l.path));
  const copied = new Set(plan.copies.map((c) => c.to.path));
  const pieces = new Map<string, { offset: number; length: number }[]>();
  for (const list of plan.pieces.values()) {
    for (const p of list) {
      let l = pieces.get(p.path);
      if (!l) pieces.set(p.path, (l = []));
      l.push(p);
    }
  }
  const hash: FileOp[] = [];
  let proven = 0;
  for (const op of tree.ops) {
    if (op.kind !== 'file' || op.size === 0 || linked.has(op.path)) continue;
    if (copied.has(op.path) || resumed.has(op.path) || !tiles(pieces.get(op.path) ?? [], op.size)) hash.push(op);
    else proven++;
  }
  return { hash, proven };
}

/** True if `pieces` cover [0, size) exactly, without gap or overlap. */
function tiles(pieces: { offset: number; length: number }[], size: number): boolean {
  const sorted = [...pieces].sort((a, b) => a.offset - b.offset);
  let at = 0;
  for (const p of sorted) {
    if (p.offset !== at || p.length <= 0) return false;
    at += p.length;
  }
  return at === size;
}
