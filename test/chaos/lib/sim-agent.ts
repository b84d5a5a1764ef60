/**
 * A lean simulated agent for scale tests: its own Ed25519 key and one hash chain
 * held in memory (record 0 is `agent.chain.start`, records sealed with the real
 * RecordHasher over canonical event bytes), shipped over a real gRPC stream with
 * the agent's protocol:
 *
 *   hello → challenge → signed response → resume → batches ⇄ acks
 *
 * After every (re)connect it continues from the collector's resume point, so a
 * record the collector acknowledged is never sent again and one it did not is
 * sent again. It also checks the collector: a resume point behind an ack it gave
 * (an acknowledged record lost), an expected hash that is not ours, an ack past
 * what was sent, and any refusal other than "superseded" are recorded as errors.
 */
import { generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { challengeMessage, RecordHasher, ZERO_HASH } from '@sealtrail/chain';
import { canonicalBytes, newEventId } from '@sealtrail/event';
import {
  createClient,
  Ingest,
  message,
  type ServiceClient,
  StreamRequestSchema,
  type StreamResponse,
} from '@sealtrail/proto';

export interface SimRecord {
  seq: bigint;
  recordHash: Buffer;
  eventBytes: Buffer;
  id: string;
}

export interface SimAgentOptions {
  address: string;
  batchRecords: number;
  maxInflightBatches: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** Shared credentials (a channel per agent either way). */
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** Bytes of padding in each event's message (the event is about 250 bytes without). */
  padding?: number;
}

type Req = ReturnType<typeof message<typeof StreamRequestSchema>>;

export class SimAgent {
  readonly agentId = randomUUID();
  readonly chainId = randomUUID();
  private readonly privateKey: KeyObject;
  readonly publicKey: Buffer;
  private readonly hasher: RecordHasher;
  readonly records: SimRecord[] = [];
  private readonly client: ServiceClient<typeof Ingest.method>;
  /** Highest seq the collector acknowledged (or resumed after); -1 before any. */
  acked = -1n;
  /** Streams that reached the resume point. */
  sessions = 0;
  /** Resume points past the last ack received: records stored whose ack was lost with the stream. */
  resumedPastAck = 0;
  readonly errors: string[] = [];
  readonly refusals: string[] = [];
  private stopped = false;
  private running: Promise<void> | null = null;
  private call: grpc.ClientDuplexStream<Req, StreamResponse> | null = null;
  private wake: (() => void) | null = null;
  private readonly host;

  constructor(private readonly o: SimAgentOptions) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    this.publicKey = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    this.hasher = new RecordHasher({ agentId: this.agentId, chainId: this.chainId });
    this.host = { id: this.agentId, name: `sim-${this.agentId.slice(0, 8)}`, os: 'linux' };
    this.client = createClient(Ingest, o.address, o.credentials ?? grpc.credentials.createInsecure(), {
      // One connection per simulated host, as 200 real hosts would have.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      ...o.channelOptions,
    });
    const now = new Date().toISOString();
    this.seal({
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
      message: `chain ${this.chainId} started (first_start)`,
      attributes: {
        chain_id: this.chainId,
        public_key: this.publicKey.toString('base64'),
        previous: null,
        reason: 'first_start',
      },
    });
  }

  get head(): bigint {
    return BigInt(this.records.length - 1);
  }

  get backlog(): number {
    return Number(this.head - this.acked);
  }

  private seal(event: { id: string } & Record<string, unknown>): void {
    const seq = BigInt(this.records.length);
    const prev = this.records.at(-1)?.recordHash ?? ZERO_HASH;
    const eventBytes = canonicalBytes(event);
    this.records.push({ seq, recordHash: this.hasher.seal(seq, prev, eventBytes), eventBytes, id: event.id });
  }

  /** Seals `n` more application events into the chain; the stream picks them up. */
  produce(n: number): void {
    for (let i = 0; i < n; i++) {
      const now = new Date().toISOString();
      const k = this.records.length;
      this.seal({
        id: newEventId(),
        time: now,
        observed_time: now,
        category: 'authentication',
        type: 'auth.login.failure',
        severity: 'medium',
        outcome: 'failure',
        action: 'login',
        actor: { user: `user${k % 37}`, ip: '203.0.113.9', session_id: `s-${k}` },
        host: this.host,
        source: { kind: 'http_ingest', name: 'apps' },
        message: `simulated login failure ${k}${'.'.repeat(this.o.padding ?? 0)}`,
        attributes: { n: k },
      });
    }
    this.wake?.();
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.call?.cancel();
    await this.running;
    this.client.close();
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const established = await this.session();
      if (this.stopped) break;
      attempt = established ? 0 : attempt + 1;
      // Full jitter, as the real shipper does.
      const cap = Math.min(this.o.reconnectMaxMs, this.o.reconnectInitialMs * 2 ** attempt);
      await new Promise((r) => setTimeout(r, Math.random() * cap));
    }
  }

  /** One stream; resolves when it is over, with whether it reached the resume point. */
  private session(): Promise<boolean> {
    const call = this.client.stream() as grpc.ClientDuplexStream<Req, StreamResponse>;
    this.call = call;
    let streaming = false;
    let ended = false;
    let lastSent = -1n;
    const inflight: bigint[] = [];
    let pumping = false;
    let drained: (() => void) | null = null;

    const pump = async () => {
      if (pumping) return;
      pumping = true;
      try {
        while (!ended && !this.stopped) {
          if (inflight.length >= this.o.maxInflightBatches || lastSent >= this.head) {
            await new Promise<void>((r) => {
              this.wake = r;
            });
            this.wake = null;
            continue;
          }
          const from = Number(lastSent + 1n);
          const batch = this.records.slice(from, from + this.o.batchRecords);
          const last = batch.at(-1)!.seq;
          const ok = call.write(
            message(StreamRequestSchema, {
              body: {
                case: 'batch',
                value: {
                  chainId: this.chainId,
                  records: batch.map((r) => ({
                    seq: r.seq,
                    recordHash: r.recordHash,
                    eventBytes: r.eventBytes,
                  })),
                },
              },
            }),
          );
          inflight.push(last);
          lastSent = last;
          if (!ok)
            await new Promise<void>((r) => {
              drained = r;
              call.once('drain', r);
            });
        }
      } finally {
        pumping = false;
      }
    };

    call.on('data', (res: StreamResponse) => {
      const body = res.body;
      switch (body.case) {
        case 'challenge':
          call.write(
            message(StreamRequestSchema, {
              body: {
                case: 'challengeResponse',
                value: {
                  signature: sign(null, challengeMessage(this.agentId, body.value.nonce), this.privateKey),
                },
              },
            }),
          );
          return;
        case 'resume': {
          const r = body.value;
          let from = -1n;
          if (r.chainId !== '' && r.chainId !== this.chainId) {
            this.errors.push(`resume names chain ${r.chainId}, not ours`);
          } else if (r.hasPosition) {
            from = r.resumeAfterSeq;
            const mine = this.records[Number(from)];
            if (!mine) this.errors.push(`resume after ${from} is past our head ${this.head}`);
            else if (!mine.recordHash.equals(r.expectedHash))
              this.errors.push(`resume after ${from}: expected hash is not ours`);
          }
          if (from < this.acked)
            this.errors.push(
              `collector resumes after ${from} but had acknowledged ${this.acked}: acked records lost`,
            );
          // What the collector holds durably counts as acknowledged (its ack may have been lost).
          if (from > this.acked) {
            this.acked = from;
            if (this.sessions > 0) this.resumedPastAck++;
          }
          lastSent = from;
          streaming = true;
          this.sessions++;
          void pump();
          return;
        }
        case 'ack': {
          const through = body.value.throughSeq;
          if (body.value.chainId !== this.chainId) this.errors.push(`ack for chain ${body.value.chainId}`);
          if (through > lastSent) this.errors.push(`ack through ${through} past what was sent (${lastSent})`);
          if (through > this.acked) this.acked = through;
          while (inflight.length > 0 && inflight[0]! <= through) inflight.shift();
          this.wake?.();
          return;
        }
        case 'refusal':
          this.refusals.push(body.value.code);
          if (body.value.code !== 'superseded')
            this.errors.push(`refused: ${body.value.code}: ${body.value.message}`);
          return;
      }
    });

    call.write(
      message(StreamRequestSchema, {
        body: {
          case: 'hello',
          value: {
            agentId: this.agentId,
            agentVersion: 'sim',
            hostname: this.host.name,
            publicKey: this.publicKey,
            head: { chainId: this.chainId, seq: this.head, recordHash: this.records.at(-1)!.recordHash },
          },
        },
      }),
    );

    return new Promise<boolean>((resolve) => {
      const finish = () => {
        if (ended) return;
        ended = true;
        this.call = null;
        this.wake?.();
        drained?.();
        resolve(streaming);
      };
      call.on('error', finish);
      call.on('end', finish);
      call.on('status', (s: grpc.StatusObject) => {
        if (s.code !== grpc.status.OK) finish();
      });
    });
  }
}
