/**
 * Every stable error code lander reports. Operators and tests match on these;
 * a new failure gets a new code here (tsc refuses a code that is not listed).
 */
export const ERROR_CODES = [
  'ERR_ABORTED', 'ERR_API', 'ERR_API_IN_USE', 'ERR_API_NOT_LOOPBACK', 'ERR_API_SOCKET',
  'ERR_API_TIMEOUT', 'ERR_API_TOKEN', 'ERR_ARCHIVE_CORRUPT', 'ERR_ARCHIVE_ENTRY_TYPE',
  'ERR_ARCHIVE_FORMAT', 'ERR_ARCHIVE_LIMIT', 'ERR_ARCHIVE_LINK', 'ERR_ARCHIVE_PATH',
  'ERR_BAD_REQUEST', 'ERR_BAD_VERSION', 'ERR_BODY_TOO_LARGE', 'ERR_BUSY', 'ERR_CONFIG',
  'ERR_CONNECT_TIMEOUT', 'ERR_DESIRED', 'ERR_DIGEST_MISMATCH', 'ERR_DIGEST_UNAVAILABLE',
  'ERR_DISK_FULL', 'ERR_DISK_SPACE', 'ERR_DOWNLOAD_FAILED', 'ERR_EXISTS', 'ERR_EXTRACT_WRITE',
  'ERR_FLUSH', 'ERR_GENERATION_BUILD', 'ERR_GENERATION_CONFLICT', 'ERR_GENERATION_LINK',
  'ERR_HTTP_REQUEST_TIMEOUT', 'ERR_HTTP_STATUS', 'ERR_IDLE_TIMEOUT', 'ERR_INDEX_INVALID',
  'ERR_INDEX_MISMATCH', 'ERR_KEYGEN', 'ERR_LOCKED', 'ERR_LOG_FILE', 'ERR_MANIFEST',
  'ERR_MEMBER_CORRUPT', 'ERR_METHOD_NOT_ALLOWED', 'ERR_NOT_FOUND', 'ERR_NO_DAEMON',
  'ERR_NO_GENERATION', 'ERR_NO_ROLLBACK', 'ERR_NO_SERVER', 'ERR_OCI_MANIFEST', 'ERR_PACK_EMPTY',
  'ERR_PACK_LINK', 'ERR_PACK_PATH', 'ERR_PACK_RULES', 'ERR_PACK_SOURCE', 'ERR_PACK_USAGE',
  'ERR_PERMISSION', 'ERR_PROXY', 'ERR_PUSH', 'ERR_RANGE_UNSUPPORTED', 'ERR_REGISTRY_AUTH',
  'ERR_RESTART', 'ERR_REUSE_SHORT', 'ERR_ROLLBACK', 'ERR_SERVER_BUSY', 'ERR_SERVER_CONFIG',
  'ERR_SERVER_ENVIRONMENT', 'ERR_SERVER_EXITED', 'ERR_SERVER_SPAWN', 'ERR_SERVER_STOP',
  'ERR_SERVER_UNHEALTHY', 'ERR_SIGN', 'ERR_SIGNATURE', 'ERR_SIZE_LIMIT', 'ERR_STATE',
  'ERR_STORE_INDEX', 'ERR_SWAP', 'ERR_TOO_MANY_REDIRECTS', 'ERR_TOO_MANY_STREAMS',
  'ERR_UNAUTHORIZED', 'ERR_UNEXPECTED', 'ERR_USAGE', 'ERR_WORKER_EXIT', 'ERR_WORKER_FAILED'
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes of the operating system's errors that lander reacts to (`err.code` of a Node/Deno I/O error). */
export type SystemErrorCode = 'ENOSPC' | 'ENOENT' | 'EEXIST' | 'EACCES' | 'EPERM' | 'EPIPE' | 'ECONNREFUSED' | 'ECONNRESET' | 'ETIMEDOUT' | 'EADDRINUSE' | 'ENOTDIR' | 'EISDIR' | 'ELOOP' | 'EXDEV' | 'ENOTEMPTY';

const known: ReadonlySet<string> = new Set(ERROR_CODES);

/** `code` when lander knows it, else `fallback`: for codes that arrive from outside (an API answer). */
export function asErrorCode(code: unknown, fallback: ErrorCode): ErrorCode {
  return typeof code === 'string' && known.has(code) ? (code as ErrorCode) : fallback;
}
