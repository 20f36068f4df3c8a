/**
 * The two transport timeouts of a request, shared by both HTTP clients
 * (`http-get.ts` over node:http, `http1/lean-get.ts`): their codes, their
 * defaults and the errors that name the host and the time.
 */

/** Codes of transport failures worth another attempt (with a Range from the bytes so far). */
export const ERR_IDLE_TIMEOUT = 'ERR_IDLE_TIMEOUT';
export const ERR_CONNECT_TIMEOUT = 'ERR_CONNECT_TIMEOUT';

export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export function connectTimeoutError(url: URL, ms: number): Error {
  return Object.assign(new Error(`no connection to ${url.host} within ${ms} ms`), { code: ERR_CONNECT_TIMEOUT });
}

export function idleTimeoutError(url: URL, ms: number): Error {
  return Object.assign(new Error(`no data from ${url.host} for ${ms} ms`), { code: ERR_IDLE_TIMEOUT });
}
