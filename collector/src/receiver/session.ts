/**
 * One agent's stream: hello → challenge → verified signature → resume point →
 * batches, each verified record by record against the agent's chain state and
 * committed to the spool before it is acknowledged.
 *
 * Verification never trusts a hash it was sent: both the event hash and the
 * record hash are recomputed from the bytes and the collector's own state.
 *   seq below the head, same hash  → duplicate: counted, acked again
 *   seq below the head, other hash → fork: evidence kept, stream refused
 *   seq past head + 1              → gap: evidence kept, stream refused
 *   bytes that do not chain        → forged or changed: evidence kept, stream refused
 */
import { createPublicKey, type KeyObject, randomBytes, verify } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { challengeMessage, checkpointMessage, uuidBytes } from '@sealtrail/chain';
import { type AuditEvent, decodeEventFast, type EventHead, scanEvent } from '@sealtrail/event';
import {
  type MessageInitShape,
  message,
  type RecordBatch,
  type StreamRequest,
  type StreamResponse,
  StreamResponseSchema,
} from '@sealtrail/proto';
import type { Logger } from '@sealtrail/telemetry';
import { type AgentState, type IncomingRecord, newAgentState, type Spool } from '../spool/spool.js';
import type { InHandBudget } from './budget.js';
import type { ReceiverMetrics } from './metrics.js';
import { RecordChecker } from './verify.js';

const HELLO_TIMEOUT_MS = 10_000;
/** Records that speak about the chain itself: their attributes are read, so they are decoded in full. */
const CHAIN_EVENT_TYPES = new Set(['agent.chain.start', 'agent.checkpoint']);
/**
 * What one agent's stream may hold read and not yet finished (a batch: until its ack): a few
 * full batches (one verifying, one or two being fsynced), or more small ones, so an agent that
 * sends a trickle of small batches is not held to three per group-commit latency.
 */
const MAX_IN_HAND = 16;
const MAX_IN_HAND_BYTES = 1024 * 1024;

export type Call = grpc.ServerDuplexStream<StreamRequest, StreamResponse>;

/** What a record's event is known as: the scan's id, type and host id, or the whole decoded event. */
type ScannedEvent = Omit<EventHead, 'hostId'> & { hostId?: string } & Partial<AuditEvent>;

export class SessionRefused extends Error {
  constructor(
    readonly grpcCode: status,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface SessionDeps {
  spool: Spool;
  log: Logger;
  metrics: ReceiverMetrics;
  /** Shared by all streams: bytes read and not yet finished. */
  budget: InHandBudget;
  /** Trust an unknown agent's key on first use (no enrollment yet in this build). */
  trustOnFirstUse: boolean;
  /** Called once the agent is authenticated; returns when an older stream of the same agent has wound down. */
  claim(agentId: string, session: Session): Promise<AgentState | undefined>;
  release(agentId: string, session: Session): void;
}

/** What a request holds in memory while in hand, near enough: its payload bytes. */
function requestBytes(req: StreamRequest): number {
  if (req.body.case !== 'batch') return 0;
  let n = 0;
  for (const r of req.body.value.records) n += r.eventBytes.length + r.eventHash.length + 64;
  return n;
}

export function publicKeyFromRaw(raw: Uint8Array) {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

export class Session {
  private agentId = '';
  private state: AgentState | null = null;
  private queue: Promise<void> = Promise.resolve();
  private inHand = 0;
  private inHandBytes = 0;
  private readonly unreleased = new Set<() => void>();
  private paused = false;
  /** Commits in flight, in order; each batch's ack follows its commit. */
  private commits: Promise<void> = Promise.resolve();
  private done = false;
  private nonce: Buffer | null = null;
  private hello: Extract<StreamRequest['body'], { case: 'hello' }>['value'] | null = null;
  private log: Logger;
  private publicKey: KeyObject | null = null;

  constructor(
    private readonly call: Call,
    private readonly deps: SessionDeps,
  ) {
    this.log = deps.log;
  }

  /** Runs until the stream ends. */
  run(): Promise<void> {
    const timer = setTimeout(
      () =>
        this.refuse(new SessionRefused(status.DEADLINE_EXCEEDED, 'hello_timeout', 'no hello within 10 s')),
      HELLO_TIMEOUT_MS,
    );
    const budget = this.deps.budget;
    return new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        budget.forget(this.resumeReading);
        this.done = true;
        void this.drained().finally(() => {
          // A request refused before its commit was set up is never released by it: its bytes
          // would stay counted against every other stream's budget.
          for (const r of this.unreleased) r();
          if (this.agentId) this.deps.release(this.agentId, this);
          resolve();
        });
      };
      this.call.on('data', (req: StreamRequest) => {
        clearTimeout(timer);
        // Backpressure: with its share in hand (see MAX_IN_HAND), or when
        // all streams together hold the collector's budget, stop reading the stream; HTTP/2 flow
        // control then holds the agent back, and memory stays bounded however many agents send.
        const bytes = requestBytes(req);
        this.inHand++;
        this.inHandBytes += bytes;
        budget.take(bytes);
        if ((this.full || budget.over) && !this.paused) {
          this.paused = true;
          this.call.pause();
        }
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          this.unreleased.delete(release);
          this.inHand--;
          this.inHandBytes -= bytes;
          budget.give(bytes);
          if (this.paused && !this.full) budget.whenRoom(this.resumeReading);
        };
        this.unreleased.add(release);
        // Requests are handled strictly in order: a batch's verification needs the previous one's result.
        this.queue = this.queue
          .then(() => (this.done ? undefined : this.handle(req, release)))
          .catch((err) => this.refuse(err))
          .finally(() => {
            if (req.body.case !== 'batch') release();
          });
      });
      this.call.on('end', () => {
        end();
        this.call.end();
      });
      this.call.on('error', end);
      this.call.on('cancelled', end);
      this.call.on('close', end);
    });
  }

  private get full(): boolean {
    return this.inHand >= MAX_IN_HAND || this.inHandBytes >= MAX_IN_HAND_BYTES;
  }

  private readonly resumeReading = () => {
    if (!this.paused || this.full) return;
    this.paused = false;
    this.call.resume();
  };

  /** Stops this stream (a newer one for the same agent took over, or shutdown). */
  cancel(reason: string): void {
    this.refuse(new SessionRefused(status.ABORTED, 'superseded', reason));
  }

  /** Resolves once the batches this session already took are committed (or failed). */
  drained(): Promise<void> {
    return this.queue.then(() => this.commits).catch(() => undefined);
  }

  private send(body: MessageInitShape<typeof StreamResponseSchema>['body']): void {
    if (!this.done) this.call.write(message(StreamResponseSchema, { body }));
  }

  private refuse(err: unknown): void {
    if (this.done) return;
    const r =
      err instanceof SessionRefused
        ? err
        : new SessionRefused(
            status.UNAVAILABLE,
            'internal',
            `collector could not process the stream: ${(err as Error).message}`,
          );
    if (!(err instanceof SessionRefused)) this.log.error({ err, agent_id: this.agentId }, 'stream failed');
    this.send({ case: 'refusal', value: { code: r.code, message: r.message } });
    this.done = true;
    // grpc-js ends a server stream with a status when its 'error' event is emitted (it records the
    // status, then ends the stream after the queued refusal); `destroy(err)` would tear the stream down
    // without ever sending a status, leaving the agent waiting on a dead stream.
    this.call.emit(
      'error',
      Object.assign(new Error(r.message), { code: r.grpcCode, details: `${r.code}: ${r.message}` }),
    );
  }

  private async handle(req: StreamRequest, release: () => void): Promise<void> {
    const body = req.body;
    switch (body.case) {
      case 'hello':
        return this.onHello(body.value);
      case 'challengeResponse':
        return this.onChallengeResponse(body.value.signature);
      case 'batch':
        return this.onBatch(body.value, release);
      default:
        throw new SessionRefused(
          status.INVALID_ARGUMENT,
          'unexpected_message',
          `unexpected message ${body.case ?? '(empty)'}`,
        );
    }
  }

  private async onHello(hello: NonNullable<Session['hello']>): Promise<void> {
    if (this.hello) throw new SessionRefused(status.INVALID_ARGUMENT, 'unexpected_message', 'second hello');
    try {
      uuidBytes(hello.agentId);
    } catch {
      throw new SessionRefused(
        status.INVALID_ARGUMENT,
        'bad_agent_id',
        `agent id ${JSON.stringify(hello.agentId)} is not a UUID`,
      );
    }
    if (hello.publicKey.length !== 32) {
      throw new SessionRefused(
        status.INVALID_ARGUMENT,
        'bad_public_key',
        'public key must be 32 raw Ed25519 bytes',
      );
    }
    this.hello = hello;
    this.log = this.deps.log.child({ agent_id: hello.agentId, hostname: hello.hostname });
    this.nonce = randomBytes(32);
    this.send({ case: 'challenge', value: { nonce: this.nonce } });
  }

  private async onChallengeResponse(signature: Uint8Array): Promise<void> {
    const hello = this.hello;
    if (!hello || !this.nonce)
      throw new SessionRefused(
        status.INVALID_ARGUMENT,
        'unexpected_message',
        'challenge response before hello',
      );
    if (this.agentId)
      throw new SessionRefused(status.INVALID_ARGUMENT, 'unexpected_message', 'second challenge response');
    const known = await this.deps.spool.getAgent(hello.agentId);
    const key = known ? Buffer.from(known.public_key, 'base64') : Buffer.from(hello.publicKey);
    if (known && !key.equals(hello.publicKey)) {
      this.deps.metrics.authFailures.inc({ reason: 'key_mismatch' });
      throw new SessionRefused(
        status.PERMISSION_DENIED,
        'key_mismatch',
        'agent presented a key other than the one it registered',
      );
    }
    if (!known && !this.deps.trustOnFirstUse) {
      this.deps.metrics.authFailures.inc({ reason: 'unknown_agent' });
      throw new SessionRefused(
        status.UNAUTHENTICATED,
        'unknown_agent',
        `agent ${hello.agentId} is not enrolled; run \`sealtrail-agent enroll\` with a token from \`sealtrail-collector token create\``,
      );
    }
    const msg = challengeMessage(hello.agentId, this.nonce);
    this.publicKey = publicKeyFromRaw(key);
    if (!verify(null, msg, this.publicKey, signature)) {
      this.deps.metrics.authFailures.inc({ reason: 'bad_signature' });
      throw new SessionRefused(
        status.UNAUTHENTICATED,
        'bad_signature',
        'challenge signature does not verify',
      );
    }
    this.nonce = null;
    this.agentId = hello.agentId;
    const now = new Date().toISOString();
    const current = await this.deps.claim(hello.agentId, this);
    // Checked on the state this stream will use, after claiming it: an operator's revoke or
    // accept-chain in progress has landed by then.
    if (current) this.checkStanding(current);
    this.state = current ?? newAgentState(hello.agentId, key.toString('base64'), hello.hostname, now);
    if (!current) await this.deps.spool.putAgent(this.state);
    const s = this.state;
    this.send({
      case: 'resume',
      value: {
        chainId: s.chain_id ?? '',
        hasPosition: s.seq !== null,
        resumeAfterSeq: s.seq === null ? 0n : BigInt(s.seq),
        expectedHash: s.hash ? Buffer.from(s.hash, 'hex') : new Uint8Array(),
      },
    });
    this.log.info({ chain_id: s.chain_id, resume_after: s.seq }, 'agent stream authenticated');
  }

  /** A revoked agent, or one whose chain is blocked after a fork, may not stream. */
  private checkStanding(state: AgentState): void {
    if (state.revoked) {
      this.deps.metrics.authFailures.inc({ reason: 'revoked' });
      throw new SessionRefused(
        status.PERMISSION_DENIED,
        'revoked',
        `agent ${state.agent_id} was revoked (${state.revoked.reason})`,
      );
    }
    if (state.blocked) {
      const b = state.blocked;
      throw new SessionRefused(
        status.FAILED_PRECONDITION,
        'chain_blocked',
        `agent's chain ${b.chain_id} is blocked after a ${b.fault} at seq ${b.seq}; an operator must run \`sealtrail-collector agent accept-chain ${state.agent_id}\``,
      );
    }
  }

  /** What a record's event says about the chain itself: a bad start, a bad checkpoint signature. */
  private checkEvent(
    event: ScannedEvent,
    seq: bigint,
    chainId: string,
  ): { fault: string; detail: string } | null {
    // An agent seals only its own events: another host's id is a forgery (or a relay this
    // protocol does not have), and a SIEM would attribute it to that host.
    const hostId = event.host?.id ?? event.hostId;
    if (hostId !== this.agentId) {
      return {
        fault: 'foreign_host',
        detail: `event at seq ${seq} names host ${JSON.stringify(hostId)}, not the agent ${this.agentId}`,
      };
    }
    if (seq === 0n && event.type !== 'agent.chain.start') {
      return { fault: 'bad_chain_start', detail: `record 0 is ${event.type}, not agent.chain.start` };
    }
    if (seq !== 0n && event.type === 'agent.chain.start') {
      return { fault: 'bad_chain_start', detail: `agent.chain.start at seq ${seq}` };
    }
    if (event.type === 'agent.checkpoint') {
      const a = event.attributes ?? {};
      try {
        const msg = checkpointMessage({
          agentId: this.agentId,
          chainId: String(a.chain_id),
          seq: BigInt(String(a.seq)),
          recordHash: Buffer.from(String(a.record_hash), 'hex'),
          unixMs: Number(a.unix_ms),
          nonce: Buffer.from(String(a.nonce ?? ''), 'hex'),
        });
        const sig = Buffer.from(String(a.signature), 'base64');
        if (a.chain_id !== chainId || !verify(null, msg, this.publicKey!, sig)) {
          return {
            fault: 'bad_checkpoint_signature',
            detail: `checkpoint at seq ${seq} does not verify with the agent's key`,
          };
        }
      } catch (err) {
        return {
          fault: 'bad_checkpoint_signature',
          detail: `checkpoint at seq ${seq} is malformed: ${(err as Error).message}`,
        };
      }
      this.deps.metrics.checkpoints.inc();
    }
    return null;
  }

  /** `release` is called once this batch is committed and acked (or failed). */
  private async onBatch(batch: RecordBatch, release: () => void): Promise<void> {
    const state = this.state;
    if (!state)
      throw new SessionRefused(status.UNAUTHENTICATED, 'not_authenticated', 'batch before authentication');
    const m = this.deps.metrics;
    m.batches.inc();
    const chainId = batch.chainId;
    try {
      uuidBytes(chainId);
    } catch {
      throw new SessionRefused(status.INVALID_ARGUMENT, 'bad_chain_id', 'batch chain id is not a UUID');
    }
    const accepted: IncomingRecord[] = [];
    let lastDuplicate: bigint | null = null;
    let violation: { fault: string; seq: bigint; detail: string } | null = null;
    const resets: Record<string, unknown>[] = [];
    // A copy to change while this batch is verified: the loop only sets top-level fields and
    // appends to `chains` (structuredClone cost as much as hashing a few records).
    const next: AgentState = { ...state, chains: [...state.chains] };
    // The current chain continues from its verified head; any other chain must open at record 0.
    const verifier = new RecordChecker(
      { agentId: state.agent_id, chainId },
      next.chain_id === chainId && next.seq !== null
        ? { seq: BigInt(next.seq), hash: Buffer.from(next.hash!, 'hex') }
        : null,
    );

    let n = 0;
    for (const r of batch.records) {
      // Other agents' streams and the exporters get the event loop between slices of a batch.
      if (++n % 250 === 0) await new Promise((res) => setImmediate(res));
      const erased = r.eventBytes.length === 0;
      if (erased && r.eventHash.length !== 32) {
        violation = {
          fault: 'missing_payload',
          seq: r.seq,
          detail: 'record has neither event bytes nor a 32-byte event hash',
        };
        break;
      }
      const step = verifier.check(r);
      if (step) {
        if (step.fault === 'seq_regression') {
          const stored = await this.deps.spool.recordHashAt(state.agent_id, chainId, r.seq);
          if (stored && Buffer.from(r.recordHash).equals(stored)) {
            m.duplicates.inc();
            lastDuplicate = r.seq;
            continue;
          }
          violation = { fault: stored ? 'fork' : 'seq_regression', seq: r.seq, detail: step.detail };
        } else violation = { fault: step.fault, seq: step.seq, detail: step.detail };
        break;
      }
      let event: ScannedEvent | null = null;
      if (!erased) {
        try {
          // Most events are only checked, and give their id: a scan of the bytes, no parse. What
          // it is not sure of, and the chain's own events, are decoded in full.
          const head = scanEvent(r.eventBytes);
          event = head && !CHAIN_EVENT_TYPES.has(head.type) ? head : decodeEventFast(r.eventBytes);
        } catch (err) {
          violation = { fault: 'invalid_event', seq: r.seq, detail: (err as Error).message };
          break;
        }
        const bad = this.checkEvent(event, r.seq, chainId);
        if (bad) {
          violation = { ...bad, seq: r.seq };
          break;
        }
      } else if (r.seq === 0n) {
        violation = { fault: 'bad_chain_start', seq: 0n, detail: 'record 0 has no payload' };
        break;
      }
      if (r.seq === 0n && event) {
        const previous = (event.attributes?.previous ?? null) as {
          chain_id?: string;
          last_seq?: string;
          last_hash?: string;
        } | null;
        const namesHead =
          next.chain_id === null ||
          (previous?.chain_id === next.chain_id &&
            previous.last_seq === next.seq &&
            previous.last_hash === next.hash);
        if (!namesHead) {
          // A new chain that does not continue from what the collector last acknowledged: a reset.
          resets.push({
            previous_named: previous,
            collector_head: { chain_id: next.chain_id, seq: next.seq, hash: next.hash },
            reason: event.attributes?.reason,
          });
        }
        this.log.info(
          { previous_chain: next.chain_id, chain_id: chainId, reason: event.attributes?.reason },
          'agent started a chain',
        );
        next.chains.push({
          chain_id: chainId,
          first_seen: new Date().toISOString(),
          previous: previous ?? null,
        });
        next.chain_id = chainId;
      }
      if (next.chain_id !== chainId) {
        violation = {
          fault: 'unknown_chain',
          seq: r.seq,
          detail: `chain ${chainId} is not the agent's current chain`,
        };
        break;
      }
      verifier.accept();
      accepted.push({
        chainId,
        seq: r.seq,
        recordHash: r.recordHash,
        eventBytes: erased ? r.eventHash : r.eventBytes,
        erased,
        eventId: event?.id ?? '',
      });
    }

    // The commit is not awaited here: the next batch is verified (from this one's state)
    // while this one is being fsynced, and commits and acks still happen strictly in order.
    // If a commit fails the stream is refused, and the next stream starts from what is on disk.
    let committed: Promise<unknown> = Promise.resolve();
    if (accepted.length > 0) {
      // The new head, once per batch rather than per record (nothing in the loop reads it after
      // a record of this chain was accepted).
      const head = verifier.head!;
      next.seq = String(head.seq);
      next.hash = Buffer.from(head.hash).toString('hex');
      next.last_seen = new Date().toISOString();
      next.records += accepted.length;
      const p = this.deps.spool.commit(next, accepted);
      this.state = next;
      committed = p.then(({ duplicateIds }) => {
        m.records.inc(accepted.length);
        if (duplicateIds) m.duplicateIds.inc(duplicateIds);
      });
    }
    for (const reset of resets) {
      m.violations.inc({ fault: 'reset' });
      await this.deps.spool.addViolation({
        time: new Date().toISOString(),
        agent_id: state.agent_id,
        chain_id: chainId,
        seq: '0',
        fault: 'reset',
        detail: 'new chain does not name the head the collector last acknowledged',
        ...reset,
      });
      this.log.warn(
        { chain_id: chainId },
        'agent chain reset: the new chain does not name the last acknowledged head',
      );
    }
    const through = accepted.length > 0 ? accepted[accepted.length - 1]!.seq : lastDuplicate;
    const ackable = through !== null && this.state!.chain_id === chainId;
    this.commits = this.commits
      .then(() => committed)
      .then(() => {
        if (ackable) this.send({ case: 'ack', value: { chainId, throughSeq: through! } });
      })
      .finally(release);
    this.commits.catch((err) => this.refuse(err));
    if (violation) {
      // Evidence and refusal come after what was verified before the bad record is durable and acked.
      await this.commits;
      const v = violation;
      m.violations.inc({ fault: v.fault });
      const offending = batch.records.find((r) => r.seq === v.seq);
      await this.deps.spool.addViolation({
        time: new Date().toISOString(),
        agent_id: state.agent_id,
        chain_id: chainId,
        seq: String(v.seq),
        fault: v.fault,
        detail: v.detail,
        head: { chain_id: this.state!.chain_id, seq: this.state!.seq, hash: this.state!.hash },
        record_hash: offending ? Buffer.from(offending.recordHash).toString('hex') : null,
        event_bytes: offending ? Buffer.from(offending.eventBytes).toString('base64') : null,
      });
      if (v.fault === 'fork') {
        // A fork stops this agent's streams until an operator decides which history stands.
        const since = new Date().toISOString();
        this.state = {
          ...this.state!,
          blocked: { fault: v.fault, chain_id: chainId, seq: String(v.seq), since },
        };
        await this.deps.spool.putAgent(this.state);
      }
      this.log.error(
        { chain_id: chainId, seq: String(v.seq), fault: v.fault },
        `integrity violation: ${v.detail}`,
      );
      throw new SessionRefused(
        status.FAILED_PRECONDITION,
        v.fault,
        `integrity violation at seq ${v.seq}: ${v.detail}`,
      );
    }
  }
}
