/**
 * Hash worker entry: SHA-256 of a growing file's prefix, read back from the
 * page cache on this thread, so the archive digest runs on the other core
 * while the install worker extracts. With `inflate` (a large single stream)
 * the same bytes also go through gunzip here and the tar stream is posted
 * back (`src/install/inflate-relay.ts`). Takes a HashRequest as workerData
 * (or as a spare, `src/base/worker-request.ts`, in its start message);
 * `upto` messages move the watermark; `ring` hands over a shared ring the
 * bytes from then on come through instead of the file (`freed` answers how
 * far it was copied out); `finish` posts the digest (and ends the gzip
 * stream); `credit` returns tar-stream window.
 */
import { parentPort } from 'node:worker_threads';
import { serializeError } from '../src/base/errors.ts';
import { hashFilePrefix } from '../src/install/file-prefix-hash.ts';
import { inflateRelay } from '../src/install/inflate-relay.ts';
import { onRequest } from '../src/base/worker-request.ts';
import type { HashEvent, HashRequest, HashToWorker } from './protocol.ts';

if (!parentPort) throw new Error('hash.worker must run in a worker thread');
const port = parentPort;
onRequest<HashRequest>(hash);

function hash(req: HashRequest): void {
  const post = (e: HashEvent, transfer?: ArrayBuffer[]) => port.postMessage(e, transfer);
  const relay = req.inflate ? inflateRelay({ ...req.inflate, post }) : undefined;
  const h = hashFilePrefix(req.file, relay, (bytes) => post({ type: 'freed', bytes }));
  const onMessage = (m: HashToWorker) => {
    if (m.type === 'upto') h.upto(m.bytes);
    else if (m.type === 'ring') h.fromRing(m.buffer, m.from);
    else if (m.type === 'credit') relay?.credit(m.bytes);
    else if (m.type === 'finish') {
      h.finish(m.bytes).then(
        (hex) => {
          post({ type: 'digest', hex });
          void relay?.end();
        },
        (err: unknown) => post({ type: 'error', jobId: 'hash', error: serializeError(err) }),
      );
    }
  };
  port.on('message', onMessage);
}
