/**
 * Signed checkpoints (design brief): every `everyEvents` records or `everyMs`,
 * every `idleMs` even when nothing happened (so silence is visible), on
 * shutdown, and when the collector challenges. Each is Ed25519 over
 * checkpointMessage(...) and is appended to the chain as `agent.checkpoint`,
 * so a checkpoint is itself sealed.
 *
 * After each checkpoint is durable, its position is written to an anchor file
 * beside the journal (temp → fsync → rename). A journal later found *behind*
 * its anchor was rolled back (its files replaced by an older copy). The anchor is
 * written on the thread pool, the newest position only when checkpoints come faster
 * than the disk syncs (at 100k events/s, 100 a second): two fsyncs per checkpoint on
 * the event loop had stalled the agent for tens of ms at a time. An anchor that lags
 * by a checkpoint is still a bound the journal must not fall below.
 */
import { sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkpointMessage } from '@sealtrail/chain';
import { writeFileAtomicAsync } from '@sealtrail/config';
import type { SealtrailError } from '@sealtrail/errors';
import type { AuditEvent } from '@sealtrail/event';
import type { Logger } from '@sealtrail/telemetry';
import type { AgentIdentity } from '../identity/identity.js';
import { checkpointEvent } from './events.js';
import type { Journal } from './journal.js';

export interface Anchor {
  chain_id: string;
  seq: string;
  hash: string;
}

export function readAnchor(file: string): Anchor | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Anchor;
  } catch {
    return null;
  }
}

export interface CheckpointerOptions {
  journal: Journal;
  identity: AgentIdentity;
  host: AuditEvent['host'];
  anchorFile: string;
  everyEvents: number;
  everyMs: number;
  idleMs: number;
  log: Logger;
  onCheckpoint?: () => void;
}

export class Checkpointer {
  private timer: NodeJS.Timeout | null = null;
  private lastSeq: bigint | null = null;
  private lastChain: number | null = null;
  private lastAt = Date.now();
  private busy: Promise<void> = Promise.resolve();
  private stopped = false;
  /** An every_events checkpoint is queued: appends meanwhile do not queue more. */
  private queuedEvery = false;
  /** The anchor text still to be written, and the write in progress. */
  private anchorNext: string | null = null;
  private anchorWriting: Promise<void> | null = null;

  constructor(private readonly o: CheckpointerOptions) {}

  start(): void {
    const h = this.o.journal.head;
    this.lastSeq = h?.seq ?? null;
    this.lastChain = h?.chain ?? null;
    this.timer = setInterval(() => this.tick(), Math.min(1000, this.o.everyMs, this.o.idleMs)).unref();
    this.o.journal.on('appended', this.onAppended);
  }

  private onAppended = () => {
    if (this.queuedEvery || this.recordsSince() < this.o.everyEvents) return;
    this.queuedEvery = true;
    const done = () => {
      this.queuedEvery = false;
    };
    this.checkpoint('every_events').then(done, done);
  };

  private recordsSince(): number {
    const h = this.o.journal.head;
    if (!h) return 0;
    if (this.lastSeq === null || h.chain !== this.lastChain) return Number(h.seq) + 1;
    return Number(h.seq - this.lastSeq);
  }

  private tick(): void {
    const elapsed = Date.now() - this.lastAt;
    if (this.recordsSince() > 0 && elapsed >= this.o.everyMs) void this.checkpoint('every_seconds');
    else if (elapsed >= this.o.idleMs) void this.checkpoint('idle');
  }

  /** Signs the current head and seals the checkpoint; `nonce` is the collector's challenge, if any. */
  checkpoint(reason: string, nonce: Buffer = Buffer.alloc(0)): Promise<void> {
    const run = this.busy.then(() => this.write(reason, nonce));
    this.busy = run.catch((err) => this.o.log.warn({ err: (err as Error).message }, 'checkpoint failed'));
    return run;
  }

  private async write(reason: string, nonce: Buffer): Promise<void> {
    // A checkpoint names its chain, so it may only be sealed in it: when damage found while
    // reading starts a new chain before this one is written, the journal refuses it and the
    // new chain's head is signed instead (a collector would take the old chain's checkpoint,
    // sealed in the new chain, for a bad signature).
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.writeOnce(reason, nonce);
      } catch (err) {
        if ((err as SealtrailError).code !== 'ST_JOURNAL_CHAIN_MOVED' || attempt === 3) throw err;
      }
    }
  }

  private async writeOnce(reason: string, nonce: Buffer): Promise<void> {
    if (this.stopped && reason !== 'shutdown') return;
    const { journal, identity } = this.o;
    const head = journal.head;
    if (!head) return;
    const chainId = journal.chainMeta(head.chain)!.chainId;
    const unixMs = Date.now();
    const msg = checkpointMessage({
      agentId: identity.agentId,
      chainId,
      seq: head.seq,
      recordHash: head.hash,
      unixMs,
      nonce,
    });
    const signature = sign(null, msg, identity.privateKey);
    this.lastAt = unixMs;
    const ev = checkpointEvent(this.o.host, {
      chainId,
      seq: head.seq,
      recordHash: head.hash,
      unixMs,
      nonce,
      signature,
      reason,
    });
    const range = await journal.append({ events: [ev], forChain: head.chain });
    const now = journal.head!;
    this.lastSeq = range.last;
    this.lastChain = now.chain;
    const hash = await journal.recordHashAt(now.chain, range.last);
    if (hash) {
      const cpChain = journal.chainMeta(now.chain)!.chainId;
      this.writeAnchor(
        JSON.stringify({ chain_id: cpChain, seq: String(range.last), hash: hash.toString('hex') }),
      );
    }
    this.o.onCheckpoint?.();
  }

  /** Writes `text` to the anchor file after the write in progress (only the newest text waits). */
  private writeAnchor(text: string): void {
    this.anchorNext = text;
    this.anchorWriting ??= (async () => {
      while (this.anchorNext !== null) {
        const next = this.anchorNext;
        this.anchorNext = null;
        try {
          await writeFileAtomicAsync(this.o.anchorFile, next, 0o600);
        } catch (err) {
          this.o.log.warn(
            { err: (err as Error).message, file: this.o.anchorFile },
            'cannot write the journal anchor',
          );
        }
      }
    })().finally(() => {
      this.anchorWriting = null;
    });
  }

  /** Resolves once the anchor names the newest checkpoint written so far (tests, shutdown). */
  async anchorWritten(): Promise<void> {
    while (this.anchorWriting) await this.anchorWriting;
  }

  /** A last checkpoint, then no more. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.o.journal.off('appended', this.onAppended);
    await this.busy;
    await this.checkpoint('shutdown').catch(() => undefined);
    await this.anchorWritten();
  }
}
