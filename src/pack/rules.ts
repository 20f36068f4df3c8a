/**
 * Which component each path of a one-folder build goes to (pure). A rule set
 * is an ordered list of rules (glob, prefix, or the built-in `nvidia`
 * matcher), each naming a component; the first rule that matches a path wins
 * and paths no rule matches go to the default component. No I/O: the
 * `lander pack` command reads the rules file and walks the folder.
 */
import { z } from 'zod';
import { COMPONENT_NAME, VERSION_PATTERN } from '../config/schema.ts';
import { PackError } from '../base/errors.ts';

export type RuleMatch = { glob: string; ignoreCase?: boolean } | { prefix: string } | { builtin: 'nvidia' };
export type PackRule = RuleMatch & { component: string };

export interface ComponentOutput {
  /** Archive file name; `{version}` expands. @default "<name>-{version}.tar.gz" */
  asset: string;
  /** Version, unless `--component-version name=ver` gives one. */
  version?: string;
}

export interface RuleSet {
  /** Component of every path that no rule matches. */
  default: string;
  /** Output settings per component; a component only named by a rule gets the defaults. */
  components: Record<string, ComponentOutput>;
  rules: PackRule[];
}

/**
 * Library name prefixes that voicebox's scripts/package_cuda.py moves to
 * cuda-libs (compared lower-case, after a leading `lib`). `cublaslt`,
 * `cufftw` and `cusolvermg` are covered by shorter ones; kept so the list
 * reads like the upstream one.
 */
export const NVIDIA_LIB_PREFIXES = ['cublas', 'cublaslt', 'cudart', 'cudnn', 'cufft', 'cufftw', 'curand', 'cusolver', 'cusolvermg', 'cusparse', 'nvjitlink', 'nvrtc', 'nccl', 'caffe2_nvrtc'] as const;

/**
 * package_cuda.py's test, same semantics (learned from its source, not
 * copied): lower-cased, anything under a folder named `nvidia` at any depth
 * (the nvidia-* wheels' namespace package, `__init__.py` included); else a
 * file name that ends in `.dll` or contains `.so` (so `libx.so.12` too) whose
 * stem (before the first `.dll`/`.so`, without a leading `lib`) starts with
 * one of the prefixes. Python stubs (`nccl.py`, `cudart.py`) have neither
 * suffix, so they stay in the core; package_cuda.py's explicit keep-list
 * names only such stubs and therefore needs no counterpart here.
 */
export function isNvidiaPath(rel: string): boolean {
  const parts = rel.toLowerCase().split('/');
  const name = parts.pop()!;
  if (parts.includes('nvidia')) return true;
  if (!name.endsWith('.dll') && !name.includes('.so')) return false;
  let stem = name.split('.dll')[0]!.split('.so')[0]!;
  if (stem.startsWith('lib')) stem = stem.slice(3);
  return NVIDIA_LIB_PREFIXES.some((p) => stem.startsWith(p));
}

/** The built-in `nvidia` rule set: voicebox's split, asset names as in its releases. */
export const NVIDIA_RULE_SET: RuleSet = {
  default: 'server',
  components: {
    server: { asset: 'voicebox-server-cuda.tar.gz' },
    'cuda-libs': { asset: 'cuda-libs-{version}.tar.gz' },
  },
  rules: [{ component: 'cuda-libs', builtin: 'nvidia' }],
};

/**
 * A glob as a RegExp over a POSIX relative path. `*` and `?` stay within one
 * folder, `**` spans folders (`a/**` + `/b` also matches `a/b`), `{x,y}` is
 * either, `[...]` a character class. A glob without `/` is matched against
 * the file name at any depth, as in .gitignore.
 *
 * @example globToRegExp('_internal/**' + '/libcudnn*.so*').test('_internal/torch/lib/libcudnn.so.9') // true
 */
export function globToRegExp(glob: string, ignoreCase = false): RegExp {
  const basenameOnly = !glob.includes('/');
  let re = '';
  let inBrace = false;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const atStart = i === 0 || glob[i - 1] === '/';
      i++;
      if (atStart && glob[i + 1] === '/') {
        re += '(?:.*/)?'; // `**/`: zero or more whole folders
        i++;
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '{' && !inBrace) {
      inBrace = true;
      re += '(?:';
    } else if (c === '}' && inBrace) {
      inBrace = false;
      re += ')';
    } else if (c === ',' && inBrace) re += '|';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) re += '\\[';
      else {
        let body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^$()|\\\]]/g, '\\$&');
  }
  if (inBrace) throw new PackError('ERR_PACK_RULES', `Cannot use the glob ${JSON.stringify(glob)}: a "{" is never closed`, { data: { glob } });
  return new RegExp(basenameOnly ? `(?:^|/)${re}$` : `^${re}$`, ignoreCase ? 'i' : '');
}

export type Classifier = (rel: string) => string;

/** Compiles a rule set into a function from a path to its component. */
export function compileRules(rs: RuleSet): Classifier {
  const tests = rs.rules.map((r): ((p: string) => boolean) => {
    if ('builtin' in r) return isNvidiaPath;
    if ('prefix' in r) return (p) => p.startsWith(r.prefix);
    const re = globToRegExp(r.glob, r.ignoreCase ?? false);
    return (p) => re.test(p);
  });
  return (rel) => {
    for (let i = 0; i < tests.length; i++) if (tests[i]!(rel)) return rs.rules[i]!.component;
    return rs.default;
  };
}

/** Every component of a rule set, default first, then in the order they are declared or first named. */
export function componentNames(rs: RuleSet): string[] {
  return [...new Set([rs.default, ...Object.keys(rs.components), ...rs.rules.map((r) => r.component)])];
}

/** The output settings of a component, with the default asset name filled in. */
export function componentOutput(rs: RuleSet, name: string): ComponentOutput {
  return rs.components[name] ?? { asset: `${name}-{version}.tar.gz` };
}

const name = z.string().regex(COMPONENT_NAME, 'Expected a component name of letters, digits and . _ -');
const asset = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._+{}-]*$/, 'Expected a file name (letters, digits, . _ + -, and {version}), no folders');
const ruleSchema = z.union([
  z.object({ component: name, glob: z.string().min(1), ignoreCase: z.boolean().optional() }).strict(),
  z.object({ component: name, prefix: z.string().min(1) }).strict(),
  z.object({ component: name, builtin: z.literal('nvidia') }).strict(),
], { error: 'Expected {"component", and one of "glob" (with optional "ignoreCase"), "prefix" or "builtin": "nvidia"}' });
const ruleSetSchema = z.object({
  default: name,
  components: z.record(name, z.object({ asset: asset.optional(), version: z.string().regex(VERSION_PATTERN, 'Expected a version of letters, digits and . _ + -').optional() }).strict()).default({}),
  rules: z.array(ruleSchema).min(1, 'Expected at least one rule'),
}).strict();

/**
 * Parses a rules file (JSON; format in the README, "Publishing with lander pack").
 *
 * @throws PackError `ERR_PACK_RULES` naming each bad field by path.
 */
export function parseRuleSet(text: string, source: string): RuleSet {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new PackError('ERR_PACK_RULES', `Cannot use the rules file ${source}: invalid JSON (${(cause as Error).message})`, { cause, data: { source } });
  }
  const r = ruleSetSchema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    throw new PackError('ERR_PACK_RULES', `Cannot use the rules file ${source}: ${issues.join('; ')}`, { data: { source, issues } });
  }
  const rs: RuleSet = { default: r.data.default, components: {}, rules: r.data.rules as PackRule[] };
  for (const [n, c] of Object.entries(r.data.components)) rs.components[n] = { asset: c.asset ?? `${n}-{version}.tar.gz`, ...(c.version ? { version: c.version } : {}) };
  for (const rule of rs.rules) if ('glob' in rule) globToRegExp(rule.glob); // a bad glob fails here, not mid-walk
  return rs;
}
