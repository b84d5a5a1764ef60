/**
 * Streams the journal to the collector over one gRPC bidi stream (proto/sealtrail/v1/ingest.proto):
 * hello → challenge → signed response → resume point → batches ⇄ acks.
 *
 * A record leaves the journal only when the collector acknowledged it, and the
 * collector acknowledges only what is durable in its spool; so a crash on either
 * side at any moment costs at most a resend, which the collector recognises as
 * a duplicate. Reconnects back off exponentially with full jitter.
 */
import * as grpc from '@grpc/grpc-js';
import {
  ChainHeadSchema,
  createClient,
  encodeBatchRequest,
  Ingest,
  message,
  StreamRequestSchema,
  type StreamResponse,
} from '@sealtrail/proto';
import { Counter, Gauge, type Logger, type Registry } from '@sealtrail/telemetry';
import { type AgentIdentity, signChallenge } from '../identity/identity.js';
import type { Journal, Position } from '../journal/journal.js';

export interface ShipperOptions {
  address: string;
  credentials: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  identity: AgentIdentity;
  journal: Journal;
  agentVersion: string;
  hostname: string;
  batchMaxRecords: number;
  batchMaxBytes: number;
  maxInflightBatches: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  reconnectMultiplier: number;
  log: Logger;
  registry: Registry;
  /** Called with the collector's challenge nonce once the stream is authenticated (a checkpoint signs it). */
  onChallenge?: (nonce: Buffer) => void;
}

const MIN_BATCH_BYTES = 64 * 1024;

const after = (a: Position, b: Position) => a.chain > b.chain || (a.chain === b.chain && a.seq > b.seq);

type StreamMessage = ReturnType<typeof message<typeof StreamRequestSchema>>;
type Stream = grpc.ClientDuplexStream<StreamMessage, StreamResponse>;

/** Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): uniform in [0, min(max, base·mult^n)]. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, multiplier: number): number {
  const cap = Math.min(maxMs, initialMs * multiplier ** attempt);
  return Math.random() * cap;
}

export class Shipper {
  private readonly client;
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private current: Stream | null = null;
  private streaming = false;
  lastAckAt: Date | null = null;
  /** Current batch byte cap: the configured one, halved each time the collector finds a message too large. */
  private batchBytes: number;
  /** Why the collector last refused a stream (shown by readiness and status). */
  lastRefusal: string | null = null;
  private readonly m;

  constructor(private readonly o: ShipperOptions) {
    this.batchBytes = o.batchMaxBytes;
    this.client = createClient(Ingest, o.address, o.credentials, {
      ...o.channelOptions,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_send_message_length': o.batchMaxBytes + 1024 * 1024,
      // The channel backs off its own connection attempts (by default from 1 s up to 120 s), under
      // the stream backoff below: bound it by the configured one, or after a long outage the agent
      // would stay away from a collector that is back for far longer than reconnect_max.
      'grpc.initial_reconnect_backoff_ms': o.reconnectInitialMs,
      'grpc.max_reconnect_backoff_ms': o.reconnectMaxMs,
    });
    const registers = [o.registry];
    this.m = {
      records: new Counter({
        name: 'sealtrail_shipper_records_sent_total',
        help: 'Records sent to the collector (resends included)',
        registers,
      }),
      batches: new Counter({ name: 'sealtrail_shipper_batches_sent_total', help: 'Batches sent', registers }),
      acked: new Counter({
        name: 'sealtrail_shipper_records_acked_total',
        help: 'Records the collector acknowledged',
        registers,
      }),
      connects: new Counter({
        name: 'sealtrail_shipper_connects_total',
        help: 'Stream attempts, by result',
        labelNames: ['result'],
        registers,
      }),
      connected: new Gauge({
        name: 'sealtrail_shipper_connected',
        help: '1 while the stream is established',
        registers,
      }),
    };
  }

  /** True once the collector named a resume point and records flow. */
  get connected(): boolean {
    return this.streaming;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Waits (at most `timeoutMs`) until the collector acknowledged everything, when connected. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.streaming && this.o.journal.backlogRecords > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.current?.cancel();
    await this.running;
    this.client.close();
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.abort.signal.aborted) {
      const began = Date.now();
      try {
        await this.session();
      } catch (err) {
        if (this.abort.signal.aborted) break;
        this.m.connects.inc({ result: 'error' });
        this.o.log.warn({ err: (err as Error).message, address: this.o.address }, 'collector stream ended');
      }
      // A stream that stayed up a while was healthy: start backing off afresh.
      if (Date.now() - began > 10_000) attempt = 0;
      const delay = backoffDelay(
        attempt++,
        this.o.reconnectInitialMs,
        this.o.reconnectMaxMs,
        this.o.reconnectMultiplier,
      );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        const onAbort = () => {
          clearTimeout(t);
          resolve();
        };
        this.abort.signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  /** One stream, from hello to its end. Resolves or rejects when the stream is over. */
  private session(): Promise<void> {
    const { journal, identity, log } = this.o;
    const call = this.client.stream() as Stream;
    this.current = call;
    let lastSent: Position | null = null;
    const inflight: Position[] = [];
    let nonce: Buffer | null = null;
    let pumping = false;
    let ended = false;
    let wake: (() => void) | null = null;
    const onAppended = () => wake?.();
    journal.on('appended', onAppended);
    // Acks are applied one at a time, and only the newest of those that arrived meanwhile: each
    // deletes through its seq, so it covers the ones before it. Applied one by one, acks that
    // arrive faster than the journal deletes (a tail writing at the same time) queued up and
    // held the journal's write lock for seconds.
    let ackWanted: { through: Position; resume: boolean } | null = null;
    let ackChain: Promise<void> = Promise.resolve();
    let acking = false;
    const ackThrough = (through: Position, resume: boolean) => {
      ackWanted = { through, resume };
      if (acking) return;
      acking = true;
      ackChain = (async () => {
        while (ackWanted) {
          const w: { through: Position; resume: boolean } = ackWanted;
          ackWanted = null;
          try {
            const before = journal.backlogRecords;
            await journal.ack(w.through);
            this.m.acked.inc(Math.max(0, before - journal.backlogRecords));
            if (!w.resume) this.lastAckAt = new Date();
          } catch (err) {
            if (w.resume) log.warn({ err: (err as Error).message }, 'resume ack failed');
            else log.error({ err }, 'journal ack failed');
          }
        }
      })().finally(() => {
        acking = false;
      });
    };

    const pump = async () => {
      if (pumping || ended || !this.streaming) return;
      pumping = true;
      try {
        while (!ended && inflight.length < this.o.maxInflightBatches) {
          const records = await journal.read(lastSent, this.o.batchMaxRecords, this.batchBytes);
          if (ended) return;
          if (records.length === 0) {
            await new Promise<void>((r) => {
              wake = r;
            });
            wake = null;
            continue;
          }
          const last = records[records.length - 1]!;
          const chainId = journal.chainMeta(last.chain)!.chainId;
          // Encoded straight from the journal's records (a dropped payload travels as its event
          // hash); the stream's serializer passes an encoded Buffer through as it is.
          const ok = call.write(encodeBatchRequest(chainId, records) as unknown as StreamMessage);
          inflight.push({ chain: last.chain, seq: last.seq });
          lastSent = { chain: last.chain, seq: last.seq };
          this.m.batches.inc();
          this.m.records.inc(records.length);
          if (!ok) await new Promise<void>((r) => call.once('drain', r));
        }
      } catch (err) {
        log.error({ err }, 'shipper failed to read the journal');
        call.cancel();
      } finally {
        pumping = false;
      }
    };

    /** Where to continue: the collector's position when it names one of our chains, else after our last ack. */
    const resumeFrom = (r: {
      chainId: string;
      hasPosition: boolean;
      resumeAfterSeq: bigint;
    }): Position | null => {
      const acked = journal.acked;
      const head = journal.head;
      const no = r.chainId ? journal.chainNo(r.chainId) : undefined;
      let from: Position | null = acked ? { chain: acked.chain, seq: acked.seq } : null;
      if (no !== undefined && r.hasPosition) {
        from = { chain: no, seq: r.resumeAfterSeq };
        if (head && after(from, head)) {
          log.error(
            { collector: String(r.resumeAfterSeq), head: String(head.seq) },
            'collector is ahead of this journal',
          );
          from = { chain: head.chain, seq: head.seq };
        }
        if (acked === null || after(from, acked)) {
          // The collector has these durably (its ack may have been lost in a crash).
          ackThrough(from, true);
        }
      }
      if (acked !== null && (from === null || after(acked, from))) {
        log.error(
          { resume_after: String(r.resumeAfterSeq), acked: String(acked.seq) },
          'collector asks for records it already acknowledged; they are gone from this journal',
        );
        from = { chain: acked.chain, seq: acked.seq };
      }
      return from;
    };

    const onResponse = (res: StreamResponse) => {
      const body = res.body;
      switch (body.case) {
        case 'challenge':
          nonce = Buffer.from(body.value.nonce);
          call.write(
            message(StreamRequestSchema, {
              body: {
                case: 'challengeResponse',
                value: { signature: signChallenge(identity, body.value.nonce) },
              },
            }),
          );
          return;
        case 'resume': {
          lastSent = resumeFrom(body.value);
          this.streaming = true;
          this.m.connected.set(1);
          this.m.connects.inc({ result: 'established' });
          log.info(
            { address: this.o.address, resume_after: lastSent === null ? null : String(lastSent.seq) },
            'streaming to collector',
          );
          if (nonce) this.o.onChallenge?.(nonce);
          void pump();
          return;
        }
        case 'ack': {
          const no = journal.chainNo(body.value.chainId);
          if (no === undefined) {
            log.error(
              { chain_id: body.value.chainId },
              'collector acknowledged a chain this journal does not have',
            );
            return;
          }
          const through = { chain: no, seq: body.value.throughSeq };
          while (inflight.length > 0 && !after(inflight[0]!, through)) inflight.shift();
          ackThrough(through, false);
          void pump();
          return;
        }
        case 'refusal':
          this.lastRefusal = `${body.value.code}: ${body.value.message}`;
          log.error({ code: body.value.code }, `collector refused the stream: ${body.value.message}`);
          return;
      }
    };

    const head = journal.head;
    const headMsg = head
      ? message(ChainHeadSchema, {
          chainId: journal.chainMeta(head.chain)!.chainId,
          seq: head.seq,
          recordHash: head.hash,
        })
      : undefined;
    call.write(
      message(StreamRequestSchema, {
        body: {
          case: 'hello',
          value: {
            agentId: identity.agentId,
            agentVersion: this.o.agentVersion,
            hostname: this.o.hostname,
            publicKey: identity.publicKey,
            ...(headMsg ? { head: headMsg } : {}),
          },
        },
      }),
    );

    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error) => {
        if (ended) return;
        ended = true;
        this.streaming = false;
        this.m.connected.set(0);
        this.current = null;
        journal.off('appended', onAppended);
        wake?.();
        void ackChain.finally(() => (err ? reject(err) : resolve()));
      };
      call.on('data', onResponse);
      call.on('error', (err) => finish(err));
      call.on('end', () => finish(new Error('collector closed the stream')));
      call.on('status', (s) => {
        if (s.code === grpc.status.RESOURCE_EXHAUSTED && this.batchBytes > MIN_BATCH_BYTES) {
          // The collector takes smaller messages than we send: halve the batch and say so.
          this.batchBytes = Math.max(MIN_BATCH_BYTES, Math.floor(this.batchBytes / 2));
          log.error(
            { batch_max_bytes: this.batchBytes, details: s.details },
            'collector refused a message as too large; sending smaller batches (lower collector.batch_max_bytes or raise grpc.max_message_bytes on the collector)',
          );
        }
        if (s.code !== grpc.status.OK) finish(new Error(`${grpc.status[s.code]}: ${s.details}`));
      });
    });
  }
}
