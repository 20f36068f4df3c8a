/**
 * Pure checks on tar entry names. Every name in an archive is hostile until
 * it passes here; the extractor turns a rejection into an ArchiveError that
 * names the entry.
 */

/** Limits on one entry name; see `ExtractLimits` in workers/protocol.ts. */
export interface EntryPathLimits {
  /** Longest accepted name, in UTF-8 bytes. @default 4096 */
  maxPathLength?: number;
  /** Most `/`-separated parts accepted. @default 1024 */
  maxPathDepth?: number;
}

export type EntryPathResult =
  | { ok: true; /** POSIX, relative, no `.` parts, no trailing `/`; `''` is the root itself. */ path: string }
  | {
      ok: false;
      reason: string;
      /** Set when a configurable limit (not the name's shape) refused it, with the value found, so the error can name both. */
      limit?: { name: 'maxPathLength' | 'maxPathDepth'; value: number; max: number };
    };

/**
 * Checks and normalises a tar entry name (`./a/b/` → `a/b`).
 *
 * Rejects rather than repairs: an absolute or `..` name is a sign of a
 * hostile archive, and stripping it (as old extractors did) hides that.
 *
 * @example checkEntryPath('./bin/server') // { ok: true, path: 'bin/server' }
 * @example checkEntryPath('../x').ok      // false
 */
export function checkEntryPath(name: string, limits: EntryPathLimits = {}): EntryPathResult {
  const maxLength = limits.maxPathLength ?? 4096;
  const maxDepth = limits.maxPathDepth ?? 1024;
  if (typeof name !== 'string' || name.length === 0) return { ok: false, reason: 'has an empty name' };
  if (name.includes('\0')) return { ok: false, reason: 'has a NUL byte in its name' };
  if (name.includes('\\')) return { ok: false, reason: 'has a backslash in its name' };
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > maxLength) return { ok: false, reason: `has a name of ${bytes} bytes, over limits.maxPathLength (${maxLength})`, limit: { name: 'maxPathLength', value: bytes, max: maxLength } };
  if (name.startsWith('/')) return { ok: false, reason: 'has an absolute path' };
  // `C:foo` is drive-relative on Windows; a colon in the first part is never legitimate here.
  if (/^[A-Za-z]:/.test(name)) return { ok: false, reason: 'has a drive-letter path' };
  const parts: string[] = [];
  const raw = name.split('/');
  // No early cut on the raw count: `./` padding is not depth, and the length cap above already bounds this loop.
  for (const part of raw) {
    if (part === '' || part === '.') continue;
    if (part === '..') return { ok: false, reason: 'has a ".." part' };
    parts.push(part);
  }
  if (parts.length > maxDepth) {
    return { ok: false, reason: `is ${parts.length} parts deep, over limits.maxPathDepth (${maxDepth})`, limit: { name: 'maxPathDepth', value: parts.length, max: maxDepth } };
  }
  return { ok: true, path: parts.join('/') };
}

/**
 * An entry name short enough for a message, a log line and /status: a
 * hostile archive can carry a 4 MiB long-name header, and twenty of those
 * in `lastErrors` would make every status request megabytes long. Names
 * up to `max` UTF-16 units are returned as they are.
 *
 * @example displayEntryName('a'.repeat(5000)) // 'aaa…aaa (5000 bytes)'
 */
export function displayEntryName(name: string, max = 256): string {
  if (name.length <= max) return name;
  const tail = Math.floor(max / 4);
  return `${name.slice(0, max - tail)}…${name.slice(-tail)} (${Buffer.byteLength(name, 'utf8')} bytes)`;
}

/** The parent folders of a normalised path, outermost first: `a/b/c` → `a`, `a/b`. */
export function parentPaths(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) out.push(path.slice(0, i));
  return out;
}

/**
 * Key under which two names collide on a case-insensitive or normalising
 * file system (macOS, Windows, some Linux mounts): NFC plus full case
 * folding, so `ß` and `SS` meet.
 */
export function collisionKey(path: string): string {
  return path.normalize('NFC').toUpperCase().toLowerCase().normalize('NFC');
}

/**
 * Resolves a symlink target against the links already extracted, following
 * known links with a hop cap, and returns the resolved path relative to the
 * tree's root, or a reason when it leaves the tree.
 *
 * Segment logic only (never `startsWith` on strings), so `cur -> .` then
 * `par -> cur/..` is seen to climb out.
 *
 * @param fromDir the normalised folder holding the link (`''` for the root)
 * @param target the raw link target from the archive
 * @param links normalised link path → raw target, for links created so far
 */
export function resolveLinkTarget(
  fromDir: string,
  target: string,
  links: ReadonlyMap<string, string>,
  opts: { maxHops?: number; maxPathLength?: number; /** Called with each path walked through. */ onVisit?(path: string): void } = {},
): { ok: true; path: string } | { ok: false; reason: string } {
  const maxHops = opts.maxHops ?? 40;
  const maxLength = opts.maxPathLength ?? 4096;
  if (target.length === 0) return { ok: false, reason: 'has an empty link target' };
  if (target.includes('\0') || target.includes('\\')) return { ok: false, reason: 'has a link target with a NUL or backslash' };
  // A target the kernel would refuse anyway (PATH_MAX) is refused here with a clear reason, not an ENAMETOOLONG later.
  if (Buffer.byteLength(target, 'utf8') > maxLength) return { ok: false, reason: `has a link target longer than ${maxLength} bytes` };
  if (target.startsWith('/') || /^[A-Za-z]:/.test(target)) return { ok: false, reason: `links to the absolute path "${target}"` };
  const stack = fromDir === '' ? [] : fromDir.split('/');
  const queue = target.split('/').reverse(); // pop() from the end = next segment
  let hops = 0;
  let expanded = target.length;
  while (queue.length > 0) {
    const seg = queue.pop()!;
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (stack.length === 0) return { ok: false, reason: `links to "${target}", which leaves the component's folder` };
      stack.pop();
      continue;
    }
    stack.push(seg);
    const here = stack.join('/');
    opts.onVisit?.(here);
    const link = links.get(here);
    if (link === undefined) continue;
    // A known link in the middle: continue from its target, as the kernel would.
    if (++hops > maxHops) return { ok: false, reason: `links to "${target}" through more than ${maxHops} links` };
    expanded += link.length;
    if (expanded > maxLength) return { ok: false, reason: `links to "${target}", which expands past ${maxLength} bytes` };
    if (link.startsWith('/') || /^[A-Za-z]:/.test(link)) return { ok: false, reason: `links to "${target}" through an absolute link` };
    stack.pop();
    for (const s of link.split('/').reverse()) queue.push(s);
  }
  return { ok: true, path: stack.join('/') };
}
