/**
 * Test kit for the receiver: a scripted agent (an Ed25519 key and one chain, records
 * built the way the agent's journal builds them) and a test-side stream that queues
 * every response and captures the final status. Free of any test runner, so both
 * receiver.test.ts and transport.test.ts (and benches) can use it.
 */
import { generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { eventHash, RecordHasher, u64be, uuidBytes, ZERO_HASH } from '@sealtrail/chain';
import { type AuditEvent, canonicalBytes, newEventId } from '@sealtrail/event';
import {
  EnrollRequestSchema,
  type EnrollResponse,
  type Ingest,
  message,
  type ServiceClient,
  StreamRequestSchema,
  type StreamResponse,
} from '@sealtrail/proto';

export interface Rec {
  seq: bigint;
  recordHash: Buffer;
  eventBytes: Buffer;
  event: AuditEvent;
}

/** A record as it travels: the payload, or (erased) only its event hash. */
export type WireRec = Pick<Rec, 'seq' | 'recordHash'> & { eventBytes?: Buffer; eventHash?: Buffer };

export class FakeAgent {
  readonly agentId: string;
  readonly chainId = randomUUID();
  readonly privateKey: KeyObject;
  readonly publicKey: Buffer;
  readonly hasher: RecordHasher;
  readonly records: Rec[] = [];

  constructor(opts: { agentId?: string } = {}) {
    this.agentId = opts.agentId ?? randomUUID();
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    this.publicKey = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    this.hasher = new RecordHasher({ agentId: this.agentId, chainId: this.chainId });
  }

  get host(): AuditEvent['host'] {
    return { id: this.agentId, name: 'host-under-test', os: 'linux' };
  }

  chainStart(): AuditEvent {
    const now = new Date().toISOString();
    return {
      id: newEventId(),
      time: now,
      observed_time: now,
      category: 'agent',
      type: 'agent.chain.start',
      severity: 'info',
      outcome: 'success',
      action: 'start',
      host: this.host,
      source: { kind: 'agent', name: 'agent' },
      attributes: {
        chain_id: this.chainId,
        public_key: this.publicKey.toString('base64'),
        previous: null,
        reason: 'first_start',
      },
    };
  }

  event(n: number, fields: Partial<AuditEvent> = {}): AuditEvent {
    const now = new Date().toISOString();
    return {
      id: newEventId(),
      time: now,
      observed_time: now,
      category: 'authentication',
      type: 'auth.login.failure',
      severity: 'medium',
      outcome: 'failure',
      action: 'login',
      actor: { user: `user${n}` },
      host: this.host,
      source: { kind: 'http_ingest', name: 'apps' },
      ...fields,
    };
  }

  /**
   * An `agent.checkpoint` event over the current head (design brief, "Checkpoint"), signed
   * with `key` (default: the agent's own). `over` changes what the event claims after signing.
   */
  checkpoint(
    opts: { key?: KeyObject; nonce?: Buffer; over?: Partial<{ seq: bigint; chainId: string }> } = {},
  ): AuditEvent {
    const head = this.records.at(-1);
    if (!head) throw new Error('checkpoint needs a head');
    const unixMs = Date.now();
    const nonce = opts.nonce ?? Buffer.alloc(0);
    // "sealtrail/v1/checkpoint" || 0x00 || agent_id(16) || chain_id(16) || u64be(seq)
    //   || record_hash(seq) || u64be(unix_ms) || collector_nonce      (design brief), built here by hand
    const msg = Buffer.concat([
      Buffer.from('sealtrail/v1/checkpoint\0'),
      uuidBytes(this.agentId),
      uuidBytes(this.chainId),
      u64be(head.seq),
      head.recordHash,
      u64be(BigInt(unixMs)),
      nonce,
    ]);
    const signature = sign(null, msg, opts.key ?? this.privateKey);
    const now = new Date(unixMs).toISOString();
    return {
      id: newEventId(),
      time: now,
      observed_time: now,
      category: 'agent',
      type: 'agent.checkpoint',
      severity: 'info',
      outcome: 'success',
      action: 'checkpoint',
      host: this.host,
      source: { kind: 'agent', name: 'agent' },
      attributes: {
        chain_id: opts.over?.chainId ?? this.chainId,
        seq: String(opts.over?.seq ?? head.seq),
        record_hash: head.recordHash.toString('hex'),
        unix_ms: unixMs,
        nonce: nonce.toString('hex'),
        signature: signature.toString('base64'),
        reason: 'every_events',
      },
    };
  }

  /** A record at `seq` chaining to `prev` (not appended to this agent's chain). */
  seal(seq: bigint, prev: Buffer, event: AuditEvent): Rec {
    const eventBytes = canonicalBytes(event);
    return { seq, recordHash: this.hasher.seal(seq, prev, eventBytes), eventBytes, event };
  }

  /** Appends events to the chain (record 0 first, if the chain is empty). */
  append(...events: AuditEvent[]): Rec[] {
    const out: Rec[] = [];
    for (const ev of events) {
      const last = this.records.at(-1);
      const r = this.seal(last ? last.seq + 1n : 0n, last ? last.recordHash : ZERO_HASH, ev);
      this.records.push(r);
      out.push(r);
    }
    return out;
  }

  /** record 0 and `n` events. */
  grow(n: number, fields: Partial<AuditEvent> = {}): Rec[] {
    const events = Array.from({ length: n }, (_, i) => this.event(this.records.length + i, fields));
    return this.append(...(this.records.length === 0 ? [this.chainStart(), ...events] : events));
  }

  signChallenge(nonce: Uint8Array, key = this.privateKey): Buffer {
    // "sealtrail/v1/challenge" || 0x00 || agent_id(16) || nonce  (proto Hello/ChallengeResponse)
    const msg = Buffer.concat([Buffer.from('sealtrail/v1/challenge\0'), uuidBytes(this.agentId), nonce]);
    return sign(null, msg, key);
  }

  /** The Enroll RPC with `token`, for this agent's id and key. */
  enroll(client: ServiceClient<typeof Ingest.method>, token: string): Promise<EnrollResponse> {
    return client.enroll(
      message(EnrollRequestSchema, {
        token,
        publicKey: this.publicKey,
        hostname: 'host-under-test',
        agentId: this.agentId,
      }),
      { deadline: Date.now() + 10_000 },
    );
  }
}

/** A record as an agent sends it once its journal dropped the payload (on_full: drop_oldest). */
export function erased(r: Rec): WireRec {
  return { seq: r.seq, recordHash: r.recordHash, eventHash: eventHash(r.eventBytes) };
}

type Body<C extends StreamResponse['body']['case']> = Extract<StreamResponse['body'], { case: C }>['value'];

const json = (v: unknown) => JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? String(x) : x));

export class Conn {
  private readonly call;
  private readonly responses: StreamResponse[] = [];
  private waiter: (() => void) | null = null;
  readonly status: Promise<grpc.StatusObject>;
  ended = false;

  constructor(client: ServiceClient<typeof Ingest.method>) {
    this.call = client.stream();
    this.call.on('data', (r: StreamResponse) => {
      this.responses.push(r);
      this.waiter?.();
    });
    this.call.on('error', () => undefined); // the status promise carries it
    this.status = new Promise((resolve) =>
      this.call.on('status', (s: grpc.StatusObject) => {
        this.ended = true;
        this.waiter?.();
        resolve(s);
      }),
    );
  }

  /** The next response; fails after `timeoutMs` or when the stream ended without one. */
  async next(timeoutMs = 5_000): Promise<StreamResponse> {
    const deadline = Date.now() + timeoutMs;
    while (this.responses.length === 0) {
      if (this.ended) throw new Error('stream ended without a further response');
      if (Date.now() > deadline) throw new Error('timed out waiting for a response');
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
        setTimeout(resolve, 50);
      });
      this.waiter = null;
    }
    return this.responses.shift()!;
  }

  /** The next response, which must be a `kind`; the error names what came instead. */
  async expect<C extends StreamResponse['body']['case']>(kind: C): Promise<Body<C>> {
    const r = await this.next();
    if (r.body.case !== kind) throw new Error(`expected ${kind}, got ${json(r.body)}`);
    return r.body.value as Body<C>;
  }

  /** Every response still queued once the stream is over. */
  async rest(): Promise<StreamResponse[]> {
    await this.status;
    return this.responses.splice(0);
  }

  hello(agent: FakeAgent, publicKey = agent.publicKey): void {
    const head = agent.records.at(-1);
    this.call.write(
      message(StreamRequestSchema, {
        body: {
          case: 'hello',
          value: {
            agentId: agent.agentId,
            agentVersion: '0.0.0-test',
            hostname: 'host-under-test',
            publicKey,
            ...(head ? { head: { chainId: agent.chainId, seq: head.seq, recordHash: head.recordHash } } : {}),
          },
        },
      }),
    );
  }

  respond(signature: Uint8Array): void {
    this.call.write(
      message(StreamRequestSchema, { body: { case: 'challengeResponse', value: { signature } } }),
    );
  }

  batch(chainId: string, records: WireRec[]): void {
    this.call.write(
      message(StreamRequestSchema, {
        body: {
          case: 'batch',
          value: {
            chainId,
            records: records.map((r) =>
              r.eventBytes
                ? { seq: r.seq, recordHash: r.recordHash, eventBytes: r.eventBytes }
                : { seq: r.seq, recordHash: r.recordHash, eventHash: r.eventHash! },
            ),
          },
        },
      }),
    );
  }

  /** hello → challenge → signed response → resume. */
  async handshake(agent: FakeAgent): Promise<Body<'resume'>> {
    this.hello(agent);
    const { nonce } = await this.expect('challenge');
    if (nonce.length !== 32) throw new Error(`challenge nonce is ${nonce.length} bytes, not 32`);
    this.respond(agent.signChallenge(nonce));
    return this.expect('resume');
  }

  /** Closes our half and waits for the collector to end the stream. */
  async close(): Promise<grpc.StatusObject> {
    this.call.end();
    return this.status;
  }

  cancel(): void {
    this.call.cancel();
  }
}
