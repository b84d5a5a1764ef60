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
  Ingest,
  message,
  StreamRequestSchema,
  type StreamResponse,
} from '@sealtrail/proto';
import { Counter, Gauge, type Logger, type Registry } from '@sealtrail/telemetry';
import { type AgentIdentity, signChallenge } from '../identity/identity.js';
import type { Journal } from '../journal/journal.js';

export interface ShipperOptions {
  address: string;
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
}

type Stream = grpc.ClientDuplexStream<ReturnType<typeof message<typeof StreamRequestSchema>>, StreamResponse>;

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
  private readonly m;

  constructor(private readonly o: ShipperOptions) {
    this.client = createClient(Ingest, o.address, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_send_message_length': o.batchMaxBytes + 1024 * 1024,
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
    let lastSent: bigint | null = null;
    const inflight: bigint[] = [];
    let pumping = false;
    let ended = false;
    let wake: (() => void) | null = null;
    const onAppended = () => wake?.();
    journal.on('appended', onAppended);
    let ackChain = Promise.resolve();

    const pump = async () => {
      if (pumping || ended || !this.streaming) return;
      pumping = true;
      try {
        while (!ended && inflight.length < this.o.maxInflightBatches) {
          const records = await journal.read(lastSent, this.o.batchMaxRecords, this.o.batchMaxBytes);
          if (ended) return;
          if (records.length === 0) {
            await new Promise<void>((r) => {
              wake = r;
            });
            wake = null;
            continue;
          }
          const last = records[records.length - 1]!.seq;
          const ok = call.write(
            message(StreamRequestSchema, {
              body: { case: 'batch', value: { chainId: journal.chainId, records } },
            }),
          );
          inflight.push(last);
          lastSent = last;
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

    const onResponse = (res: StreamResponse) => {
      const body = res.body;
      switch (body.case) {
        case 'challenge':
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
          const r = body.value;
          const acked = journal.acked;
          if (r.chainId === journal.chainId && r.hasPosition) {
            lastSent = r.resumeAfterSeq;
            const head = journal.head;
            if (head && lastSent > head.seq) {
              log.error(
                { collector: String(lastSent), head: String(head.seq) },
                'collector is ahead of this journal',
              );
              lastSent = head.seq;
            }
            if (acked === null || lastSent > acked) {
              // The collector has these durably (its ack may have been lost in a crash).
              const through = lastSent;
              ackChain = ackChain.then(() => journal.ack(through));
            }
          } else {
            lastSent = acked;
          }
          if (acked !== null && (lastSent === null || lastSent < acked)) {
            log.error(
              { resume_after: String(lastSent), acked: String(acked) },
              'collector asks for records it already acknowledged; they are gone from this journal',
            );
            lastSent = acked;
          }
          this.streaming = true;
          this.m.connected.set(1);
          this.m.connects.inc({ result: 'established' });
          log.info(
            { address: this.o.address, resume_after: lastSent === null ? null : String(lastSent) },
            'streaming to collector',
          );
          void pump();
          return;
        }
        case 'ack': {
          const through = body.value.throughSeq;
          while (inflight.length > 0 && inflight[0]! <= through) inflight.shift();
          ackChain = ackChain
            .then(async () => {
              const before = journal.acked;
              await journal.ack(through);
              const n = before === null ? through + 1n : through - before;
              if (n > 0n) this.m.acked.inc(Number(n));
              this.lastAckAt = new Date();
            })
            .catch((err) => log.error({ err }, 'journal ack failed'));
          void pump();
          return;
        }
        case 'refusal':
          log.error({ code: body.value.code }, `collector refused the stream: ${body.value.message}`);
          return;
      }
    };

    const head = journal.head;
    const headMsg = head
      ? message(ChainHeadSchema, { chainId: journal.chainId, seq: head.seq, recordHash: head.hash })
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
        if (s.code !== grpc.status.OK) finish(new Error(`${grpc.status[s.code]}: ${s.details}`));
      });
    });
  }
}
