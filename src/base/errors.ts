/**
 * Every failure lander reports is a LanderError with a stable `code` that
 * operators and tests can match on, structured `data`, and the original
 * `cause` kept intact. Messages read "Cannot <do>: <why>".
 */

import type { ErrorCode, SystemErrorCode } from './error-codes.ts';

export type { ErrorCode } from './error-codes.ts';
export type ErrorData = Record<string, unknown>;

export class LanderError extends Error {
  readonly code: ErrorCode;
  readonly data: ErrorData;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; data?: ErrorData } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.data = options.data ?? {};
  }
}

/** One problem of a config (or manifest) file: the field's path (`components.libs.sha256Url`, `(file)`) and what is wrong. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** The config file is unreadable or invalid; `issues` name each field path (also in `data.issues`, which crosses workers). */
export class ConfigError extends LanderError {
  readonly issues: ConfigIssue[];

  constructor(message: string, options: { cause?: unknown; data?: ErrorData } = {}) {
    super('ERR_CONFIG', message, options);
    const issues = options.data?.issues;
    this.issues = Array.isArray(issues) ? issues.filter((i): i is ConfigIssue => typeof i?.path === 'string' && typeof i?.message === 'string') : [];
  }
}

/** The archive's SHA-256 differs from the expected one. */
export class DigestMismatchError extends LanderError {
  constructor(message: string, options: { cause?: unknown; data?: ErrorData } = {}) {
    super('ERR_DIGEST_MISMATCH', message, options);
  }
}

/** The expected digest could not be obtained (sidecar missing or unparsable). */
export class DigestUnavailableError extends LanderError {
  constructor(message: string, options: { cause?: unknown; data?: ErrorData } = {}) {
    super('ERR_DIGEST_UNAVAILABLE', message, options);
  }
}

/** An archive entry is unsafe or malformed; `data.entry` names it. */
export class ArchiveError extends LanderError {}

/** A download failed after its retries; `data.url`, `data.attempts`. */
export class DownloadError extends LanderError {}

/** Another lander holds the root's lock; `data.pid` names it. */
export class LockError extends LanderError {
  constructor(message: string, options: { cause?: unknown; data?: ErrorData } = {}) {
    super('ERR_LOCKED', message, options);
  }
}

/** The on-disk store or state is inconsistent or cannot be written. */
export class StoreError extends LanderError {}

/** The GPU server could not be started, became unhealthy, or could not be stopped. */
export class ServerError extends LanderError {}

/** `lander pack` cannot split or write a release (bad rules, an empty component, a link lander would refuse); `data` names the path or component. */
export class PackError extends LanderError {}

/** The operation was aborted on request (shutdown, superseded version). */
export class AbortError extends LanderError {
  constructor(message = 'Aborted', options: { cause?: unknown; data?: ErrorData } = {}) {
    super('ERR_ABORTED', message, options);
  }
}

/** Plain-object form of an error, for worker messages and JSON logs. */
export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  data?: ErrorData;
  stack?: string;
  cause?: SerializedError;
}

export function serializeError(err: unknown, depth = 0): SerializedError {
  if (err instanceof Error) {
    const out: SerializedError = { name: err.name, message: err.message, stack: err.stack };
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    if (err instanceof LanderError && Object.keys(err.data).length > 0) out.data = err.data;
    if (err.cause !== undefined && depth < 5) out.cause = serializeError(err.cause, depth + 1);
    return out;
  }
  return { name: 'NonError', message: String(err) };
}

const classes: Record<string, new (code: ErrorCode, message: string, options: { cause?: unknown; data?: ErrorData }) => LanderError> = {
  ArchiveError,
  DownloadError,
  StoreError,
  ServerError,
  PackError,
  LanderError,
};

/** Rebuilds a LanderError (with its class where known) from its serialized form. */
export function deserializeError(s: SerializedError): Error {
  const cause = s.cause ? deserializeError(s.cause) : undefined;
  const opts = { cause, data: s.data };
  let err: Error;
  switch (s.code) {
    case 'ERR_CONFIG': err = new ConfigError(s.message, opts); break;
    case 'ERR_DIGEST_MISMATCH': err = new DigestMismatchError(s.message, opts); break;
    case 'ERR_DIGEST_UNAVAILABLE': err = new DigestUnavailableError(s.message, opts); break;
    case 'ERR_LOCKED': err = new LockError(s.message, opts); break;
    case 'ERR_ABORTED': err = new AbortError(s.message, opts); break;
    default: {
      const Cls = classes[s.name];
      if (Cls && s.code) err = new Cls(s.code as ErrorCode, s.message, opts);
      else {
        err = new Error(s.message, cause === undefined ? undefined : { cause });
        err.name = s.name;
        if (s.code) (err as { code?: string }).code = s.code;
      }
    }
  }
  if (s.stack) err.stack = s.stack;
  return err;
}

/** True when `err` (or anything in its cause chain) has the given code. */
export function hasCode(err: unknown, code: ErrorCode | SystemErrorCode): boolean {
  for (let e: unknown = err, i = 0; e && i < 10; e = (e as { cause?: unknown }).cause, i++) {
    if ((e as { code?: unknown }).code === code) return true;
  }
  return false;
}

/** A release manifest is malformed, expired or went backwards; `data.issues` name each field path. */
export class ManifestError extends LanderError {
  constructor(message: string, options: { cause?: unknown; data?: ErrorData } = {}) {
    super('ERR_MANIFEST', message, options);
  }
}

/** A minisign key or signature is malformed, or a signature does not verify; `data.reason` says which check failed. */
export class SignatureError extends LanderError {
  constructor(message: string, options: { cause?: unknown; data?: ErrorData } = {}) {
    super('ERR_SIGNATURE', message, options);
  }
}

