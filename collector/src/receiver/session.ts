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
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { ChainVerifier, uuidBytes } from '@sealtrail/chain';
import { type AuditEvent, decodeEvent } from '@sealtrail/event';
import {
  type MessageInitShape,
  message,
  type RecordBatch,
  type StreamRequest,
  type StreamResponse,
  StreamResponseSchema,
} from '@sealtrail/proto';
import type { Logger } from '@sealtrail/telemetry';
import type { AgentState, IncomingRecord, Spool } from '../spool/spool.js';
import type { ReceiverMetrics } from './metrics.js';

const CHALLENGE_DOMAIN = Buffer.from('sealtrail/v1/challenge\0', 'utf8');
const HELLO_TIMEOUT_MS = 10_000;

export type Call = grpc.ServerDuplexStream<StreamRequest, StreamResponse>;

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
  /** Trust an unknown agent's key on first use (no enrollment yet in this build). */
  trustOnFirstUse: boolean;
  /** Called once the agent is authenticated; returns when an older stream of the same agent has wound down. */
  claim(agentId: string, session: Session): Promise<AgentState | undefined>;
  release(agentId: string, session: Session): void;
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
  private done = false;
  private nonce: Buffer | null = null;
  private hello: Extract<StreamRequest['body'], { case: 'hello' }>['value'] | null = null;
  private log: Logger;

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
    return new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.done = true;
        void this.queue.finally(() => {
          if (this.agentId) this.deps.release(this.agentId, this);
          resolve();
        });
      };
      this.call.on('data', (req: StreamRequest) => {
        clearTimeout(timer);
        // Requests are handled strictly in order: a batch's verification needs the previous one's result.
        this.queue = this.queue
          .then(() => (this.done ? undefined : this.handle(req)))
          .catch((err) => this.refuse(err));
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

  /** Stops this stream (a newer one for the same agent took over, or shutdown). */
  cancel(reason: string): void {
    this.refuse(new SessionRefused(status.ABORTED, 'superseded', reason));
  }

  /** Resolves once the batches this session already took are committed (or failed). */
  drained(): Promise<void> {
    return this.queue;
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

  private async handle(req: StreamRequest): Promise<void> {
    const body = req.body;
    switch (body.case) {
      case 'hello':
        return this.onHello(body.value);
      case 'challengeResponse':
        return this.onChallengeResponse(body.value.signature);
      case 'batch':
        return this.onBatch(body.value);
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
      throw new SessionRefused(status.UNAUTHENTICATED, 'unknown_agent', 'agent is not enrolled');
    }
    const msg = Buffer.concat([CHALLENGE_DOMAIN, uuidBytes(hello.agentId), this.nonce]);
    if (!verify(null, msg, publicKeyFromRaw(key), signature)) {
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
    this.state = current ?? {
      agent_id: hello.agentId,
      public_key: key.toString('base64'),
      hostname: hello.hostname,
      first_seen: now,
      last_seen: now,
      chain_id: null,
      seq: null,
      hash: null,
      chains: [],
      records: 0,
      duplicates: 0,
    };
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

  private async onBatch(batch: RecordBatch): Promise<void> {
    const state = this.state;
    if (!state)
      throw new SessionRefused(status.UNAUTHENTICATED, 'not_authenticated', 'batch before authentication');
    const m = this.deps.metrics;
    m.batches.inc();
    let chainId = batch.chainId;
    const accepted: IncomingRecord[] = [];
    let lastDuplicate: bigint | null = null;
    let violation: { fault: string; seq: bigint; detail: string } | null = null;
    const next = structuredClone(state);

    let verifier: ChainVerifier | null = null;
    try {
      uuidBytes(chainId);
    } catch {
      throw new SessionRefused(status.INVALID_ARGUMENT, 'bad_chain_id', 'batch chain id is not a UUID');
    }
    if (next.chain_id === chainId) {
      verifier = new ChainVerifier(
        { agentId: state.agent_id, chainId },
        next.seq === null ? null : { seq: BigInt(next.seq), hash: Buffer.from(next.hash!, 'hex') },
      );
    }
    for (const r of batch.records) {
      if (!verifier) {
        // A chain the collector has not seen: it must open with record 0, `agent.chain.start`.
        verifier = new ChainVerifier({ agentId: state.agent_id, chainId });
      }
      const step = verifier.check({ seq: r.seq, recordHash: r.recordHash, eventBytes: r.eventBytes });
      if (!step.ok) {
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
      let event: AuditEvent;
      try {
        event = decodeEvent(r.eventBytes);
      } catch (err) {
        violation = { fault: 'invalid_event', seq: r.seq, detail: (err as Error).message };
        break;
      }
      if (r.seq === 0n && event.type !== 'agent.chain.start') {
        violation = {
          fault: 'bad_chain_start',
          seq: 0n,
          detail: `record 0 is ${event.type}, not agent.chain.start`,
        };
        break;
      }
      if (r.seq === 0n) {
        if (next.chain_id && next.chain_id !== chainId) {
          this.log.warn({ previous_chain: next.chain_id, chain_id: chainId }, 'agent started a new chain');
        }
        next.chains.push({
          chain_id: chainId,
          first_seen: new Date().toISOString(),
          previous: event.attributes?.previous ?? null,
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
      verifier.push({ seq: r.seq, recordHash: r.recordHash, eventBytes: r.eventBytes });
      next.seq = String(r.seq);
      next.hash = Buffer.from(step.position.hash).toString('hex');
      accepted.push({
        chainId,
        seq: r.seq,
        recordHash: r.recordHash,
        eventBytes: r.eventBytes,
        eventId: event.id,
      });
    }

    if (accepted.length > 0) {
      next.last_seen = new Date().toISOString();
      next.records += accepted.length;
      const { duplicateIds } = await this.deps.spool.commit(next, accepted);
      this.state = next;
      m.records.inc(accepted.length);
      if (duplicateIds) m.duplicateIds.inc(duplicateIds);
    }
    const through = accepted.length > 0 ? accepted[accepted.length - 1]!.seq : lastDuplicate;
    if (through !== null && this.state!.chain_id === chainId) {
      this.send({ case: 'ack', value: { chainId, throughSeq: through } });
    }
    if (violation) {
      chainId = batch.chainId;
      m.violations.inc({ fault: violation.fault });
      const offending = batch.records.find((r) => r.seq === violation!.seq);
      await this.deps.spool.addViolation({
        time: new Date().toISOString(),
        agent_id: state.agent_id,
        chain_id: chainId,
        seq: String(violation.seq),
        fault: violation.fault,
        detail: violation.detail,
        head: { seq: this.state!.seq, hash: this.state!.hash },
        record_hash: offending ? Buffer.from(offending.recordHash).toString('hex') : null,
        event_bytes: offending ? Buffer.from(offending.eventBytes).toString('base64') : null,
      });
      this.log.error(
        { chain_id: chainId, seq: String(violation.seq), fault: violation.fault },
        `integrity violation: ${violation.detail}`,
      );
      throw new SessionRefused(
        status.FAILED_PRECONDITION,
        violation.fault,
        `integrity violation at seq ${violation.seq}: ${violation.detail}`,
      );
    }
  }
}
