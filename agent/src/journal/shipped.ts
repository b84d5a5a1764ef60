/**
 * What `read` handed out after the acked record, kept so that `ack` can delete an
 * acknowledged range, and count what it freed, without reading the range back: reading
 * keys and values (or even keys alone) of 1,000 records to delete them cost about 3 µs per
 * record in a standalone loop (a native Buffer per key and per value), deleting keys built
 * here 0.7.
 *
 * It holds, for one chain, the payload size of every record from just after the acked
 * record on (contiguous, as the journal keeps them), and the keys of the head marks among
 * those rows. A mark can only be missing from what `read` saw when it sorts after the last
 * record a read returned (the read stopped there, or a position-only append rewrote the
 * head's mark later), so each read's last record's mark is listed too, whether or not it
 * exists: deleting a key that is not there is harmless.
 *
 * Anything it does not cover exactly (the first ack, a range across chains, a resume, a
 * read that does not continue it) is answered `null`, and the journal deletes by scanning as
 * before; whatever rewrites rows it covers (drop_oldest, recovery) resets it first.
 */
import { headMarkKey, type Position } from './layout.js';

export interface Covered {
  /** Records from just after the acked one through the acknowledged one. */
  records: number;
  /** Their payload bytes, as `payloadSize` counts them. */
  bytes: number;
  /** Head mark keys among them (some possibly absent), before the acknowledged record's own. */
  marks: Buffer[];
}

interface Mark {
  seq: bigint;
  key: Buffer;
}

export class ShippedLedger {
  private chain = -1;
  /** Seq of sizes[0]. */
  private first = 0n;
  /** The first read began at the journal's first row (nothing acked yet): it covers from there. */
  private fromStart = false;
  private sizes: number[] = [];
  /** Head marks with their seq; -1 for marks before the first record (a read from the start). */
  private marks: Mark[] = [];

  get records(): number {
    return this.sizes.length;
  }

  reset(): void {
    this.chain = -1;
    this.fromStart = false;
    this.sizes = [];
    this.marks = [];
  }

  /**
   * A read returned the records `first`..`last` of `chain` (their payload sizes in order) and
   * saw the head marks `marks` among its rows up to its last record (`fromStart`: the read
   * began at the journal's first row, and `marks` holds those before its first record too).
   * Kept when they continue what is held; otherwise they replace it. Whether what is held
   * starts just after the acked record is asked when an ack comes (`cover`).
   */
  extend(
    chain: number,
    first: bigint,
    last: bigint,
    sizes: readonly number[],
    marks: readonly Buffer[],
    fromStart = false,
  ): void {
    if (sizes.length === 0 || last - first + 1n !== BigInt(sizes.length)) {
      this.reset();
      return;
    }
    const continues =
      this.sizes.length > 0 && this.chain === chain && this.first + BigInt(this.sizes.length) === first;
    if (!continues) {
      this.reset();
      this.chain = chain;
      this.first = first;
      this.fromStart = fromStart;
    }
    for (const s of sizes) this.sizes.push(s);
    let lastSeen = false;
    for (const key of marks) {
      const c = key.readUInt32BE(1);
      const seq = key.readBigUInt64BE(5);
      if (c !== chain || seq < first) {
        // Before the first record: only a read from the start has them, and deletes them with it.
        if (!continues && fromStart && (c < chain || (c === chain && seq < first)))
          this.marks.push({ seq: -1n, key });
        continue;
      }
      if (seq > last) continue;
      if (seq === last) lastSeen = true;
      this.marks.push({ seq, key });
    }
    if (!lastSeen) this.marks.push({ seq: last, key: headMarkKey(chain, last) });
  }

  /**
   * What deleting from just after `acked` (null: from the journal's first row) through
   * `through` removes, or null when what is held does not start right there or does not
   * reach `through`.
   */
  cover(acked: Position | null, through: Position): Covered | null {
    if (this.sizes.length === 0 || through.chain !== this.chain) return null;
    if (acked ? acked.chain !== this.chain || this.first !== acked.seq + 1n : !this.fromStart) return null;
    const span = through.seq - this.first + 1n;
    if (span <= 0n || span > BigInt(this.sizes.length)) return null;
    const records = Number(span);
    let bytes = 0;
    for (let i = 0; i < records; i++) bytes += this.sizes[i]!;
    const marks: Buffer[] = [];
    for (const m of this.marks) if (m.seq < through.seq) marks.push(m.key);
    return { records, bytes, marks };
  }

  /** Everything through `through` was deleted (however): forget it; what is left starts just after it. */
  trim(through: Position): void {
    if (this.sizes.length === 0) return;
    this.fromStart = false;
    if (through.chain < this.chain) return;
    if (through.chain > this.chain) {
      this.reset();
      return;
    }
    const gone = through.seq - this.first + 1n;
    if (gone <= 0n) return; // acked is still before what is held: it may reach it exactly later
    if (gone >= BigInt(this.sizes.length)) {
      this.reset();
      return;
    }
    this.sizes.splice(0, Number(gone));
    this.first = through.seq + 1n;
    this.marks = this.marks.filter((m) => m.seq >= through.seq);
  }
}
