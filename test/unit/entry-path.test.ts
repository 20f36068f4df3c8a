import { describe, expect, it } from 'vitest';
import { checkEntryPath, collisionKey, displayEntryName, parentPaths, resolveLinkTarget } from '../../src/install/entry-path.ts';
import { checkMergedLinks } from '../../src/install/link-table.ts';

const bad = (name: string, limits = {}) => {
  const r = checkEntryPath(name, limits);
  expect(r.ok, `expected ${JSON.stringify(name)} to be rejected`).toBe(false);
  return r.ok ? '' : r.reason;
};

describe('checkEntryPath', () => {
  it('normalises ./ prefixes, repeated and trailing slashes', () => {
    expect(checkEntryPath('./a/b/')).toEqual({ ok: true, path: 'a/b' });
    expect(checkEntryPath('a//b/./c')).toEqual({ ok: true, path: 'a/b/c' });
    expect(checkEntryPath('./')).toEqual({ ok: true, path: '' });
    expect(checkEntryPath('lib/libcudart.so.12')).toEqual({ ok: true, path: 'lib/libcudart.so.12' });
  });
  it('rejects empty names (#23)', () => { expect(bad('')).toMatch(/empty/); });
  it('rejects .. parts (#1)', () => {
    expect(bad('../moo')).toMatch(/\.\./);
    expect(bad('tmp/../../moo')).toMatch(/\.\./);
    expect(bad('a/..')).toMatch(/\.\./);
  });
  it('rejects absolute paths without stripping them (#2)', () => {
    for (const n of ['/tmp/moo', '//tmp/moo', '////abs']) expect(bad(n)).toMatch(/absolute/);
  });
  it('rejects drive paths and backslashes (#3)', () => {
    expect(bad('C:../x')).toMatch(/drive/);
    expect(bad('x:..\\y')).toMatch(/drive|backslash/);
    expect(bad('a\\b')).toMatch(/backslash/);
  });
  it('rejects NUL', () => { expect(bad('a\0b')).toMatch(/NUL/); });
  it('rejects names too long or too deep (#14), naming the limit and the value', () => {
    expect(bad('a'.repeat(4097))).toBe('has a name of 4097 bytes, over limits.maxPathLength (4096)');
    expect(checkEntryPath('a'.repeat(4097))).toMatchObject({ limit: { name: 'maxPathLength', value: 4097, max: 4096 } });
    expect(checkEntryPath('a'.repeat(4096)).ok).toBe(true);
    expect(bad(Array(1025).fill('d').join('/'))).toBe('is 1025 parts deep, over limits.maxPathDepth (1024)');
    expect(checkEntryPath(Array(1024).fill('d').join('/')).ok).toBe(true);
    expect(checkEntryPath('a/b/c', { maxPathDepth: 2 })).toMatchObject({ ok: false, limit: { name: 'maxPathDepth', value: 3, max: 2 } });
    expect(bad('é'.repeat(3), { maxPathLength: 5 })).toMatch(/6 bytes/); // bytes, not characters
    // `./` padding is not depth
    expect(checkEntryPath('./a/./b/./c/', { maxPathDepth: 3 })).toEqual({ ok: true, path: 'a/b/c' });
  });
  it('a shape problem carries no limit (it is not configurable)', () => {
    expect(checkEntryPath('../x')).not.toHaveProperty('limit');
  });
});

describe('parentPaths', () => {
  it('lists parents outermost first', () => {
    expect(parentPaths('a/b/c')).toEqual(['a', 'a/b']);
    expect(parentPaths('a')).toEqual([]);
  });
});

describe('collisionKey (#11)', () => {
  it('folds case and Unicode normalisation', () => {
    expect(collisionKey('ß')).toBe(collisionKey('SS'));
    expect(collisionKey('Lib/A.so')).toBe(collisionKey('lib/a.so'));
    expect(collisionKey('e\u0301')).toBe(collisionKey('\u00e9'));
    expect(collisionKey('a')).not.toBe(collisionKey('b'));
  });
});

describe('resolveLinkTarget', () => {
  const none = new Map<string, string>();
  it('allows relative links inside the tree', () => {
    expect(resolveLinkTarget('lib', 'libcudart.so.12', none)).toEqual({ ok: true, path: 'lib/libcudart.so.12' });
    expect(resolveLinkTarget('a/b', '../c', none)).toEqual({ ok: true, path: 'a/c' });
    expect(resolveLinkTarget('', '.', none)).toEqual({ ok: true, path: '' });
  });
  it('rejects absolute targets (#4, #5)', () => {
    expect(resolveLinkTarget('', '/tmp/moo', none).ok).toBe(false);
    expect(resolveLinkTarget('', 'C:/x', none).ok).toBe(false);
  });
  it('rejects climbing out', () => {
    expect(resolveLinkTarget('', '..', none).ok).toBe(false);
    expect(resolveLinkTarget('a', '../../x', none).ok).toBe(false);
  });
  it('follows known links: cur -> ., par -> cur/.. (#6)', () => {
    const links = new Map([['cur', '.']]);
    expect(resolveLinkTarget('', 'cur/..', links).ok).toBe(false);
  });
  it('follows known links: up -> ../.., escape -> up/.. (#9)', () => {
    const links = new Map([['a/b/up', '../..']]);
    expect(resolveLinkTarget('a/b', '../..', none)).toEqual({ ok: true, path: '' });
    expect(resolveLinkTarget('a/b', 'up/..', links).ok).toBe(false);
  });
  it('refuses a target longer than the path limit', () => {
    expect(resolveLinkTarget('', 'a/'.repeat(3000), none)).toMatchObject({ ok: false, reason: /longer than 4096/ });
    expect(resolveLinkTarget('', 'a'.repeat(100), none, { maxPathLength: 99 }).ok).toBe(false);
  });
  it('compares by segments, never by string prefix (#22)', () => {
    // From staging/<job>/, "../../../root-evil" lands beside the root; a startsWith(root) check would let it through.
    expect(resolveLinkTarget('', '../root-evil/moo', none).ok).toBe(false);
    expect(resolveLinkTarget('out', '../out-evil/x', none)).toEqual({ ok: true, path: 'out-evil/x' });
  });
  it('caps hops and expansion (#15)', () => {
    const loop = new Map([['x', 'y'], ['y', 'x']]);
    const r = resolveLinkTarget('', 'x', loop);
    expect(r.ok).toBe(false);
    const links = new Map<string, string>();
    for (let i = 0; i < 30; i++) links.set(`l${i}`, `${'./'.repeat(100)}l${i + 1}`);
    expect(resolveLinkTarget('', 'l0', links, { maxPathLength: 2000 }).ok).toBe(false);
  });
});

describe('checkMergedLinks (#20)', () => {
  it('finds a link that escapes only once two trees are combined, in either order', () => {
    const a = { path: 'd/a', target: 'b/../..' }; // alone: d/b is no link, so this is the root
    const b = { path: 'd/b', target: '..' }; // alone: the root
    expect(checkMergedLinks([a])).toBeUndefined();
    expect(checkMergedLinks([b])).toBeUndefined();
    expect(checkMergedLinks([a, b])).toMatchObject({ path: 'd/b', reason: /earlier link "d\/a" escape/ });
    expect(checkMergedLinks([b, a])).toMatchObject({ path: 'd/a', reason: /leaves/ });
  });
  it('accepts the links real CUDA trees have', () => {
    expect(checkMergedLinks([{ path: 'lib/libcudart.so', target: 'libcudart.so.12' }, { path: 'lib/libcublas.so', target: './libcublas.so.12' }])).toBeUndefined();
  });
});

describe('displayEntryName', () => {
  it('keeps short names and shortens huge ones, keeping both ends and the size', () => {
    expect(displayEntryName('lib/a.so')).toBe('lib/a.so');
    const long = `${'d/'.repeat(3000)}tail.so`;
    const shown = displayEntryName(long);
    expect(shown.length).toBeLessThan(300);
    expect(shown).toMatch(/^d\/d\//);
    expect(shown).toMatch(/tail\.so \(6007 bytes\)$/);
  });
});
