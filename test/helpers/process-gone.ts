/** Whether a process has gone, for tests that check a server was stopped. */
import fs from 'node:fs';

/** Gone, or a zombie (PID 1 here may not reap orphans; a zombie holds nothing). */
export function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
