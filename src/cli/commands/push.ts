/**
 * `lander push <pack-out-dir> oci://HOST/PREFIX`: publishes a `lander pack`
 * release to an OCI registry (src/pack/push.ts).
 */
import { parseArgs } from 'node:util';
import { LanderError } from '../../base/errors.ts';
import { credentialLookup } from '../../fetch/oci/credentials.ts';
import { pushRelease } from '../../pack/push.ts';
import { createLogger, type Logger } from '../../report/log.ts';
import { formatBytes } from '../../base/units.ts';

export const PUSH_HELP = `lander push: publish lander pack output to an OCI registry

Usage:
  lander push <pack-out-dir> oci://HOST[:PORT]/PREFIX [--token-file FILE] [--docker-config FILE] [--json]

Each component of <pack-out-dir>/manifest.json becomes PREFIX/<component>:<version>, an OCI
artifact whose one layer is the archive. Blobs the registry has are skipped; pushing twice
changes nothing. oci+http:// talks plain HTTP (a registry on loopback or a lab network).
  --token-file FILE      send the token in FILE as Authorization: Bearer
  --docker-config FILE   credentials from this docker config.json (default: ~/.docker/config.json)
`;

export async function pushCommand(argv: string[], io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream; log?: Logger }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: {
      'token-file': { type: 'string' }, 'docker-config': { type: 'string' }, json: { type: 'boolean', default: false },
      'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
    } });
  } catch (err) {
    io.stderr.write(`lander push: ${(err as Error).message}\n\n${PUSH_HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    io.stdout.write(PUSH_HELP);
    return 0;
  }
  const level = v['log-level'] ?? (io.stderr.isTTY && !v.json ? 'warn' : undefined);
  const log = io.log ?? createLogger(level ? { level } : {});
  try {
    if (positionals.length !== 2) {
      io.stderr.write(`lander push: expected <pack-out-dir> and oci://HOST/PREFIX, got ${positionals.length} arguments\n\n${PUSH_HELP}`);
      return 2;
    }
    const [dir, target] = positionals as [string, string];
    const registry = /^oci(?:\+http)?:\/\/([^/]+)/.exec(target)?.[1];
    const lookup = credentialLookup({
      ...(v['token-file'] && registry ? { tokenFiles: { [registry]: v['token-file'] } } : {}),
      ...(v['docker-config'] ? { dockerConfig: v['docker-config'] } : {}),
    });
    const results = await pushRelease({
      dir, target, credentials: lookup,
      onComponent: (r) => {
        log.info({ event: 'push.component', ...r }, 'component pushed');
        if (!v.json) io.stdout.write(`${r.component.padEnd(12)} ${r.version.padEnd(14)} ${r.reference}@${r.manifestDigest}  ${r.manifestPushed || r.blobsPushed > 0 ? `pushed ${r.blobsPushed} blob(s), ${formatBytes(r.bytesPushed)}` : 'unchanged'}${r.blobsPresent > 0 ? `; ${r.blobsPresent} already there` : ''}\n`);
      },
    });
    log.info({ event: 'push.done', target, components: results.length, bytesPushed: results.reduce((n, r) => n + r.bytesPushed, 0) }, 'release pushed');
    if (v.json) io.stdout.write(`${JSON.stringify({ target, components: results })}\n`);
    return 0;
  } catch (err) {
    const code = err instanceof LanderError ? err.code : 'ERR_UNEXPECTED';
    log.error({ event: 'push.failed', code, err }, (err as Error).message);
    io.stderr.write(`lander push: ${(err as Error).message}\n`);
    return code === 'ERR_PACK_USAGE' ? 2 : 1;
  } finally {
    log.flush?.();
  }
}
