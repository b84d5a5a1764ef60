/** The gRPC listener: one Session per agent stream, at most one live stream per agent. */
import * as grpc from '@grpc/grpc-js';
import { addService, Ingest } from '@sealtrail/proto';
import type { Logger, Registry } from '@sealtrail/telemetry';
import type { AgentState, Spool } from '../spool/spool.js';
import { receiverMetrics } from './metrics.js';
import { type Call, Session } from './session.js';

export interface ReceiverOptions {
  listen: string;
  spool: Spool;
  log: Logger;
  registry: Registry;
  maxMessageBytes: number;
}

export class Receiver {
  private readonly server: grpc.Server;
  private readonly sessions = new Map<string, Session>();
  private readonly all = new Set<Session>();
  private listening = false;
  boundAddress = '';

  constructor(private readonly o: ReceiverOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': o.maxMessageBytes,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    const metrics = receiverMetrics(o.registry);
    const deps = {
      spool: o.spool,
      log: o.log,
      metrics,
      trustOnFirstUse: true,
      claim: (agentId: string, s: Session) => this.claim(agentId, s),
      release: (agentId: string, s: Session) => {
        if (this.sessions.get(agentId) === s) this.sessions.delete(agentId);
      },
    };
    addService(this.server, Ingest, {
      stream: (call) => {
        metrics.streams.inc();
        const s = new Session(call as Call, deps);
        this.all.add(s);
        void s.run().finally(() => this.all.delete(s));
      },
      enroll: (_call, callback) =>
        callback({
          code: grpc.status.UNIMPLEMENTED,
          details: 'enrollment is not available in this build; agents are trusted on first use over loopback',
        }),
    });
  }

  /** Newest stream wins: an older one of the same agent is stopped and drained first. */
  private async claim(agentId: string, s: Session): Promise<AgentState | undefined> {
    const old = this.sessions.get(agentId);
    this.sessions.set(agentId, s);
    if (old && old !== s) {
      old.cancel('a newer stream of this agent took over');
      await old.drained().catch(() => undefined);
    }
    return this.o.spool.getAgent(agentId);
  }

  get isListening(): boolean {
    return this.listening;
  }

  async start(): Promise<void> {
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.o.listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    this.boundAddress = `${this.o.listen.slice(0, this.o.listen.lastIndexOf(':'))}:${port}`;
    this.listening = true;
    this.o.log.warn(
      { listen: this.boundAddress },
      'gRPC listening without TLS (insecure: true); use on loopback only',
    );
  }

  /** Stops taking streams, lets sessions finish what they committed, then closes. */
  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    for (const s of this.all) s.cancel('collector is shutting down');
    await Promise.allSettled([...this.all].map((s) => s.drained()));
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 5_000);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
