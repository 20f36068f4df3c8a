/**
 * Pure parser for `.sha256` sidecars as published next to voicebox assets
 * (`sha256sum` output).
 */
import { DigestUnavailableError } from '../base/errors.ts';

/**
 * Extracts the lowercase hex digest from `<hex>  <name>`, `<hex> *<name>`
 * (binary mode) or a bare `<hex>`. When `archiveName` is given and the line
 * names a file, the name must match, so a sidecar for another asset is not
 * taken by mistake.
 *
 * @throws DigestUnavailableError on anything else (never installs unverified).
 * @example parseSha256Sidecar('ab…ef  cuda-libs-cu128-v1.tar.gz\n', 'cuda-libs-cu128-v1.tar.gz')
 */
export function parseSha256Sidecar(text: string, archiveName?: string): string {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length !== 1) {
    throw new DigestUnavailableError(`Cannot read the SHA-256 sidecar: expected one line "<hex>  <name>", got ${lines.length} lines`, { data: { archiveName } });
  }
  const m = /^\s*([0-9a-fA-F]{64})(?:(?: \*| {1,2}|\t)(\S.*?))?\s*$/.exec(lines[0]!);
  if (!m) {
    throw new DigestUnavailableError(`Cannot read the SHA-256 sidecar: expected "<64 hex digits>  <name>", got ${JSON.stringify(lines[0]!.slice(0, 100))}`, { data: { archiveName } });
  }
  const name = m[2];
  if (archiveName !== undefined && name !== undefined) {
    const base = name.replace(/^\.\//, '').split('/').pop();
    if (base !== archiveName) {
      throw new DigestUnavailableError(`Cannot use the SHA-256 sidecar: it is for "${name}", not "${archiveName}"`, { data: { archiveName, sidecarName: name } });
    }
  }
  return m[1]!.toLowerCase();
}
