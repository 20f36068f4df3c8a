/**
 * Tar bytes in, gzip members out: cuts the tar stream into chunks and
 * compresses each as its own gzip member, so the output is one ordinary
 * `.tar.gz` whose members can be fetched, verified and inflated one by one.
 *
 * Where cuts fall: before an entry's first header once the chunk holds
 * `entryCut` bytes (so headers travel with the data that follows them and
 * small files start chunks of their own), and inside file data where the
 * gear hash says (src/pack/chunker.ts). A header is never split. The stream
 * is scanned as it passes, so the index describes exactly the bytes written.
 * Memory: one chunk (at most `max` bytes of data plus its headers).
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { PackError } from '../base/errors.ts';
import type { IndexEntry, IndexMember } from '../install/chunked/index-format.ts';
import { BLOCK, isZeroBlock, paddedSize, parseHeader, parsePax, resolveGroup } from '../install/chunked/tar-header.ts';
import { GearChunker, type ChunkSizes } from './chunker.ts';

export interface ChunkedGzipOptions {
  sizes: ChunkSizes;
  /**
   * Chunk sizes inside files smaller than `smallFile` bytes (source files,
   * headers, configs: a one-line edit there then costs a small member).
   * @default sizes
   */
  smallSizes?: ChunkSizes;
  /** @default 1 MiB */
  smallFile?: number;
  /**
   * Chunk sizes inside files of `hugeFile` bytes or more (the CUDA
   * libraries: bumped rarely, installed whole often, so fewer members).
   * @default sizes
   */
  hugeSizes?: ChunkSizes;
  /** @default 64 MiB */
  hugeFile?: number;
  /** gzip level 1-9. */
  level: number;
  /** A chunk this long is cut before the next entry's header. @default 4096 */
  entryCut?: number;
  /**
   * Members hold either one file's data only or tar metadata only (the
   * previous file's padding, headers of entries without data, the next
   * file's header blocks): a file whose size changes then leaves its other
   * data members byte-equal, and metadata members, which the index
   * describes, are never fetched. Without it, headers travel with the data
   * that follows them and `entryCut` applies (format 1's layout). @default true
   */
  headerMembers?: boolean;
}

type State = 'header' | 'meta' | 'data' | 'pad' | 'tail';
const META_CAP = 4 << 20;

export class ChunkedGzip extends Transform {
  readonly members: IndexMember[] = [];
  readonly entries: IndexEntry[] = [];
  private readonly o: Required<ChunkedGzipOptions>;
  private gear: GearChunker;
  private readonly gearLarge: GearChunker;
  private readonly gearSmall: GearChunker;
  private readonly gearHuge: GearChunker;
  private chunk: Buffer[] = [];
  private chunkLen = 0;
  private tarPos = 0;
  private gzPos = 0;
  private state: State = 'header';
  private left = 0; // bytes left in the current meta/data/pad region
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  private inGroup = false; // a pax/long-name header was read; the real header follows
  private groupStart = 0;
  private meta: Buffer[] = [];
  private metaFlag = '';
  private pax: Map<string, string> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private fileHash: Hash | undefined;
  private current: IndexEntry | undefined;
  private dataInChunk = false;

  constructor(o: ChunkedGzipOptions) {
    super();
    this.o = { entryCut: 4096, headerMembers: true, smallSizes: o.sizes, smallFile: 1 << 20, hugeSizes: o.sizes, hugeFile: 64 << 20, ...o };
    this.gearLarge = this.gear = new GearChunker(o.sizes);
    this.gearSmall = o.smallSizes ? new GearChunker(o.smallSizes) : this.gearLarge;
    this.gearHuge = o.hugeSizes ? new GearChunker(o.hugeSizes) : this.gearLarge;
  }

  override _transform(buf: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.scan(buf);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.state !== 'tail') throw new PackError('ERR_PACK_SOURCE', 'Cannot pack: the tar stream ended without its end-of-archive marker');
      this.cut();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private append(b: Buffer): void {
    this.chunk.push(b);
    this.chunkLen += b.length;
    this.tarPos += b.length;
  }

  private cut(): void {
    if (this.chunkLen === 0) return;
    const raw = this.chunk.length === 1 ? this.chunk[0]! : Buffer.concat(this.chunk, this.chunkLen);
    const gz = gzipSync(raw, { level: this.o.level });
    // A metadata member (headers, padding, the end marker) is never fetched: the index carries what it says, so it needs no hash.
    const sha256 = this.o.headerMembers && !this.dataInChunk ? '' : createHash('sha256').update(raw).digest('hex');
    this.members.push({ gzOffset: this.gzPos, gzLength: gz.length, tarOffset: this.tarPos - raw.length, tarLength: raw.length, sha256 });
    this.gzPos += gz.length;
    this.chunk = [];
    this.chunkLen = 0;
    this.gear.reset();
    this.dataInChunk = false;
    this.push(gz);
  }

  private scan(buf: Buffer): void {
    let i = 0;
    while (i < buf.length) {
      const rest = buf.length - i;
      switch (this.state) {
        case 'header': {
          if (this.hdrFill === 0 && !this.inGroup) {
            if (this.o.headerMembers ? this.dataInChunk : this.chunkLen >= this.o.entryCut) this.cut();
            this.groupStart = this.tarPos;
          }
          const n = Math.min(BLOCK - this.hdrFill, rest);
          buf.copy(this.hdr, this.hdrFill, i, i + n);
          this.hdrFill += n;
          this.append(buf.subarray(i, i + n));
          i += n;
          if (this.hdrFill === BLOCK) this.onHeader();
          break;
        }
        case 'data': {
          const n = Math.min(this.left, rest);
          const slice = buf.subarray(i, i + n);
          const k = this.gear.feed(slice, this.chunkLen);
          const part = k < 0 ? slice : slice.subarray(0, k);
          this.fileHash!.update(part);
          this.append(part);
          this.dataInChunk = true;
          i += part.length;
          this.left -= part.length;
          if (k >= 0) this.cut();
          if (this.left === 0) this.endData();
          break;
        }
        case 'meta': {
          const n = Math.min(this.left, rest);
          this.meta.push(buf.subarray(i, i + n));
          this.append(buf.subarray(i, i + n));
          i += n;
          this.left -= n;
          if (this.left === 0) this.onMeta();
          break;
        }
        case 'pad': {
          const n = Math.min(this.left, rest);
          this.append(buf.subarray(i, i + n));
          i += n;
          this.left -= n;
          if (this.left === 0) this.state = 'header';
          break;
        }
        case 'tail':
          this.append(buf.subarray(i));
          i = buf.length;
          break;
      }
    }
  }

  private onHeader(): void {
    this.hdrFill = 0;
    if (!this.inGroup && isZeroBlock(this.hdr)) {
      this.state = 'tail';
      return;
    }
    const h = parseHeader(this.hdr);
    if (!h) throw new PackError('ERR_PACK_SOURCE', `Cannot pack: a tar header at ${this.tarPos - BLOCK} has a bad checksum`);
    if (h.flag === 'x' || h.flag === 'L' || h.flag === 'K') {
      if (h.size > META_CAP) throw new PackError('ERR_PACK_SOURCE', `Cannot pack: a ${h.size}-byte pax/long-name header`);
      this.inGroup = true;
      this.metaFlag = h.flag;
      this.meta = [];
      this.left = paddedSize(h.size);
      this.state = this.left === 0 ? 'header' : 'meta';
      if (this.left === 0) this.onMeta();
      return;
    }
    const g = resolveGroup(h, this.pax, this.longName, this.longLink);
    this.inGroup = false;
    this.pax = this.longName = this.longLink = undefined;
    if (!g.type || g.size < 0) throw new PackError('ERR_PACK_SOURCE', `Cannot pack: entry ${JSON.stringify(g.name)} has the tar type ${JSON.stringify(g.flag)} or a bad size`);
    const size = g.type === 'file' ? g.size : 0;
    const e: IndexEntry = { name: g.name, type: g.type, mode: g.mode & 0o7777, size, headerOffset: this.groupStart, dataOffset: this.tarPos };
    if (g.type === 'symlink' || g.type === 'link') e.linkname = g.linkname;
    this.entries.push(e);
    this.current = e;
    this.fileHash = createHash('sha256');
    if (size > 0) {
      if (this.o.headerMembers) this.cut();
      // Only at a cut (or the stream's start) may the chunker change, so each keeps its own state.
      if (this.chunkLen === 0) this.gear = size < this.o.smallFile ? this.gearSmall : size >= this.o.hugeFile ? this.gearHuge : this.gearLarge;
      this.state = 'data';
      this.left = size;
    } else this.endData();
  }

  private onMeta(): void {
    const body = Buffer.concat(this.meta);
    this.meta = [];
    if (this.metaFlag === 'x') {
      const recs = parsePax(body);
      if (!recs) throw new PackError('ERR_PACK_SOURCE', `Cannot pack: a malformed pax header at ${this.groupStart}`);
      this.pax = recs;
    } else {
      const s = body.toString('utf8');
      const v = s.slice(0, s.indexOf('\0') === -1 ? s.length : s.indexOf('\0'));
      if (this.metaFlag === 'L') this.longName = v;
      else this.longLink = v;
    }
    this.state = 'header';
  }

  private endData(): void {
    const e = this.current!;
    if (e.type === 'file') e.sha256 = this.fileHash!.digest('hex');
    if (this.o.headerMembers && this.dataInChunk) this.cut();
    this.fileHash = undefined;
    this.left = paddedSize(e.size) - e.size;
    this.state = this.left > 0 ? 'pad' : 'header';
  }
}
