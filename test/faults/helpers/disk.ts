import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

/**
 * Small filesystems for spool faults: a disk that fills after a few KiB, and one that turns read-only
 * under a running sidecar. Mounting needs root; the suite runs as root on our machines and in CI.
 */
export function canMount(): boolean {
  return process.getuid?.() === 0;
}

export interface Mounted {
  readonly dir: string;
  /** `mount -o remount,<options>`: e.g. a larger size, so a full disk has room again with its files kept. */
  remount(options: string): void;
  /** Lazy unmount (a sidecar may still hold files there); idempotent. */
  unmount(): void;
}

/** Mounts a tmpfs at `dir` (created if missing) with mount options such as `size=128k` or `ro,size=16k`. */
export function mountTmpfs(dir: string, options: string): Mounted {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  let mounted = true;
  return {
    dir,
    remount: (o) => void execFileSync('mount', ['-o', `remount,${o}`, dir]),
    unmount() {
      if (!mounted) return;
      mounted = false;
      execFileSync('umount', ['-l', dir]);
    },
  };
}
