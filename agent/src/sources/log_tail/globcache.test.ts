/**
 * The glob cache may skip listing a directory only when its times are older than the
 * previous listing by more than a coarse file system's timestamp tick: a file created in the
 * listing's own tick leaves the times unchanged and would otherwise never be found. The
 * coarse tick cannot be produced on this machine's file systems, hence times given here.
 */
import { describe, expect, it } from 'vitest';
import { COARSEST_TIMESTAMP_MS, listingStillValid } from './globcache.js';

const T = 1_764_000_000_000;
const listing = (times: number, listedAt: number) => ({
  mtimeMs: times,
  ctimeMs: times,
  listedAt,
  matches: ['/var/log/app.log'],
});

describe('glob cache', () => {
  it('reuses a listing of a directory that was last changed well before it', () => {
    expect(listingStillValid(listing(T, T + COARSEST_TIMESTAMP_MS + 1), { mtimeMs: T, ctimeMs: T })).toBe(
      true,
    );
  });

  it('lists again when the directory changed in (or near) the tick of the listing', () => {
    // Same times as cached, but the listing ran within one coarse tick of the last change:
    // a file added just after the listing, in that tick, would not have moved them.
    expect(listingStillValid(listing(T, T), { mtimeMs: T, ctimeMs: T })).toBe(false);
    expect(listingStillValid(listing(T, T + COARSEST_TIMESTAMP_MS), { mtimeMs: T, ctimeMs: T })).toBe(false);
  });

  it('lists again when either time moved, or there is no listing', () => {
    const old = listing(T, T + 10_000);
    expect(listingStillValid(old, { mtimeMs: T + 1, ctimeMs: T })).toBe(false);
    expect(listingStillValid(old, { mtimeMs: T, ctimeMs: T + 1 })).toBe(false);
    expect(listingStillValid(undefined, { mtimeMs: T, ctimeMs: T })).toBe(false);
  });
});
