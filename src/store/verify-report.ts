/** What `lander verify` compares (a tree against its store entries' file records) and what it reports. */
import type { FileRecord } from './file-record.ts';

/** One file the verify worker expects in a tree: a store index record and the component it came from. */
export interface ExpectedFile extends FileRecord {
  component: string;
}

export type DifferenceKind = 'missing' | 'extra' | 'type' | 'size' | 'content' | 'mode' | 'link';

export interface Difference {
  path: string;
  kind: DifferenceKind;
  /** The component whose index lists the path (absent for `extra`). */
  component?: string;
  expected?: string | number;
  actual?: string | number;
}

export interface VerifyReport {
  dir: string;
  /** Paths checked (expected ones plus extras found). */
  checked: number;
  /** Content bytes hashed. */
  bytes: number;
  /** Files whose index has no sha256 (written before lander hashed per file): size and mode checked only. */
  unhashed: number;
  differences: Difference[];
}
