/**
 * URL fields of the config (zod): absolute, of an allowed scheme once
 * `{version}` and `{url}` are filled in; an OCI reference is parsed, so a bad
 * name or tag is reported with its field at load time.
 */
import { z } from 'zod';
import { isOciUrl, parseOciReference } from '../fetch/oci/reference.ts';

const URL_SCHEMES = ['http:', 'https:', 'file:'];
/** Archives may also come from an OCI registry (src/fetch/oci/). */
const ARCHIVE_SCHEMES = [...URL_SCHEMES, 'oci:', 'oci+http:'];

/** A URL template: `{version}` (and in sidecars `{url}`) expand later. */
export const urlTemplate = z.string().min(1).superRefine((v, ctx) => checkUrl(v, ctx, URL_SCHEMES));
/** An archive URL template: http(s), file, or an OCI reference. */
export const archiveUrlTemplate = z.string().min(1).superRefine((v, ctx) => checkUrl(v, ctx, ARCHIVE_SCHEMES));

function checkUrl(v: string, ctx: z.RefinementCtx, schemes: string[]): void {
  const probe = v.replaceAll('{version}', '0').replaceAll('{url}', 'http://x/');
  let u: URL;
  try {
    u = new URL(probe);
  } catch {
    ctx.addIssue({ code: 'custom', message: `Expected an absolute URL, got ${JSON.stringify(v)}` });
    return;
  }
  if (!schemes.includes(u.protocol)) {
    const names = schemes.map((s) => s.slice(0, -1));
    ctx.addIssue({ code: 'custom', message: `Expected a URL with scheme ${names.slice(0, -1).join(', ')} or ${names.at(-1)}, got ${JSON.stringify(u.protocol.slice(0, -1))}` });
    return;
  }
  if (isOciUrl(probe)) {
    try {
      parseOciReference(probe);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `Expected an OCI reference: ${(err as Error).message}` });
    }
  }
}
