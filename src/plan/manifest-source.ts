/**
 * The release manifest as a source of desired state, for `install` (one
 * poll) and `run` (a poller): a signed manifest must not be older than the
 * last one accepted on this root (the store remembers it across restarts),
 * and each new, valid manifest is handed to the reconciler whole.
 */
import type { Config } from '../config/schema.ts';
import type { LanderError } from '../base/errors.ts';
import type { ParsedManifest } from '../config/manifest.ts';
import { ManifestPoller } from '../config/manifest-poller.ts';
import type { Logger } from '../report/log.ts';
import type { Store } from '../store/store.ts';

export interface ManifestSourceOptions {
  config: Config;
  store: Store;
  log: Logger;
  /** A new, valid manifest: it replaces the previous one whole (components are never taken from two manifests). */
  onManifest(manifest: ParsedManifest): void;
  /** A poll failed; the last good manifest stays in force. The poller has logged it. */
  onError?(err: LanderError): void;
}

/** A poller for the config's manifest (not started), or undefined when none is configured. */
export function manifestPoller(opts: ManifestSourceOptions): ManifestPoller | undefined {
  const m = opts.config.manifest;
  if (!m) return undefined;
  const { store, log } = opts;
  const accepted = m.publicKey !== undefined ? store.acceptedManifest(m.url) : undefined;
  return new ManifestPoller({
    config: m,
    log,
    download: opts.config.download,
    // A signed manifest older than one accepted before (by any lander on this root) is a replay.
    ...(accepted ? { acceptedSequence: accepted.sequence } : {}),
    onManifest: (parsed, info) => {
      if (info.signature && parsed.sequence !== undefined) {
        store
          .acceptManifest(m.url, { sequence: parsed.sequence, keyId: info.signature.keyId, acceptedAt: new Date().toISOString() })
          .catch((err) => log.error({ event: 'manifest.persist-failed', url: m.url, err }, 'cannot record the accepted manifest sequence in state.json'));
      }
      opts.onManifest(parsed);
    },
    // The poller logs the failure (manifest.error) once and keeps it for /status.
    onError: (err) => opts.onError?.(err),
  });
}
