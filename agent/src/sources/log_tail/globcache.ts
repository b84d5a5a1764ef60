/**
 * When a glob's directory may be trusted not to have changed since it was last listed.
 *
 * A directory's mtime/ctime move when an entry is added or removed, but only by the file
 * system's timestamp granularity (1 s on ext3 and some NFS servers, 2 s on FAT; finer on
 * ext4, xfs, tmpfs). An entry created in the same tick as the listing, just after it, leaves
 * both times where they were, and a cache that compared them alone would never see that file.
 * So a listing is reused only when the directory's times were already older than the listing
 * by more than the coarsest granularity: any later change then lands in a later tick.
 */
export const COARSEST_TIMESTAMP_MS = 2000;

export interface DirTimes {
  mtimeMs: number;
  ctimeMs: number;
}

export interface Listing extends DirTimes {
  /** Date.now() just before the directory was stat'ed and listed. */
  listedAt: number;
  matches: string[];
}

export function listingStillValid(cached: Listing | undefined, now: DirTimes): cached is Listing {
  return (
    cached !== undefined &&
    cached.mtimeMs === now.mtimeMs &&
    cached.ctimeMs === now.ctimeMs &&
    Math.max(cached.mtimeMs, cached.ctimeMs) + COARSEST_TIMESTAMP_MS < cached.listedAt
  );
}
