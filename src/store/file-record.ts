/** The store's per-file record of an extracted tree (`store/<component>/<entry>.files.json`), written by the install worker. */

export type EntryType = 'file' | 'directory' | 'symlink' | 'link';

/** One entry of an extracted tree, as recorded in the store. */
export interface FileRecord {
  /** POSIX path relative to the component's root, no leading `./`. */
  path: string;
  type: EntryType;
  /** Bytes, for files. */
  size: number;
  /** Permission bits after clamping (e.g. 0o755). */
  mode: number;
  /** Target, for symlinks and hard links. */
  linkname?: string;
  /** SHA-256 of the content (lowercase hex), for files and hard links; hashed while extracting. Absent in indexes written before lander recorded it. */
  sha256?: string;
}
