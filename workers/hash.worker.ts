/**
 * Hash worker entry: SHA-256 of a growing file's prefix, read back from the
 * page cache on this thread, so the archive digest runs on the other core
 * while the install worker inflates and extracts. Takes a HashRequest as
 * workerData; `upto` messages move the watermark; `finish` posts the digest.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../src/base/errors.ts';
import { hashFilePrefix } from '../src/install/file-prefix-hash.ts';
import type { HashRequest, HashToWorker } from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('hash.worker must run in a worker thread');
const req = workerData as HashRequest;
const h = hashFilePrefix(req.file);
const onMessage = (m: HashToWorker) => {
  if (m.type === 'upto') h.upto(m.bytes);
  else if (m.type === 'finish') {
    h.finish(m.bytes).then(
      (hex) => port.postMessage({ type: 'digest', hex }),
      (err: unknown) => port.postMessage({ type: 'error', jobId: 'hash', error: serializeError(err) }),
    ).finally(() => port.off('message', onMessage));
  }
};
port.on('message', onMessage);
