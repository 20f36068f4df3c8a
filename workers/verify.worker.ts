/**
 * Verify worker entry: wiring only. Takes a VerifyRequest as workerData,
 * re-hashes the tree (reading every byte: never on the main thread) and
 * posts exactly one `verify-done` or `error`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../src/base/errors.ts';
import { verifyTree } from '../src/store/verify-tree.ts';
import type { VerifyRequest } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('verify.worker must run in a worker thread');
const req = workerData as VerifyRequest;

verifyTree(req.dir, req.expected, { concurrency: req.concurrency ?? 4 }).then(
  (report) => port.postMessage({ type: 'verify-done', report }),
  (err: unknown) => port.postMessage({ type: 'error', jobId: 'verify', error: serializeError(err) }),
);
