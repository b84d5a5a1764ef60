/** The gRPC listener: one Session per agent stream, at most one live stream per agent. */
import * as grpc from '@grpc/grpc-js';
import { addService, Ingest } from '@sealtrail/proto';
import type { Logger, Registry } from '@sealtrail/telemetry';
import type { AgentState, Spool } from '../spool/spool.js';
import { DEFAULT_IN_HAND_BYTES, InHandBudget } from './budget.js';
import { enrollHandler } from './enroll.js';
import { receiverMetrics } from './metrics.js';
import { type Call, Session } from './session.js';
import { DEFAULT_WINDOW_BYTES, setConnectionWindow, setStreamWindow } from './window.js';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** Mutual TLS: require client certificates signed by this CA. */
  clientCa?: Buffer;
}

export interface ReceiverOptions {
  listen: string;
  /** null: plaintext (development on loopback); agents are then trusted on first use. */
  tls: TlsFiles | null;
  tokenSecret: () => Buffer | null;
  spool: Spool;
  log: Logger;
  registry: Registry;
  maxMessageBytes: number;
  /** HTTP/2 receive window per stream and per connection (default: 1 MiB, a whole batch). */
  windowBytes?: number;
  /** Bytes all streams together may hold unfinished before they stop reading (default 64 MiB). */
  inHandBytes?: number;
}

export class Receiver {
  private readonly server: grpc.Server;
  private readonly sessions = new Map<string, Session>();
  /** Operator changes in progress, per agent. */
  private readonly changing = new Map<string, Promise<void>>();
  private readonly all = new Set<Session>();
  private listening = false;
  private readonly windowBytes: number;
  boundAddress = '';

  constructor(private readonly o: ReceiverOptions) {
    this.windowBytes = o.windowBytes ?? DEFAULT_WINDOW_BYTES;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': o.maxMessageBytes,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      // Read by grpc-js releases that support it on the server; set by hand below until then.
      'grpc-node.flow_control_window': this.windowBytes,
    });
    setStreamWindow(this.server, this.windowBytes);
    const budget = new InHandBudget(o.inHandBytes ?? DEFAULT_IN_HAND_BYTES);
    const metrics = receiverMetrics(o.registry, () => budget.bytes);
    const deps = {
      spool: o.spool,
      log: o.log,
      metrics,
      budget,
      trustOnFirstUse: o.tls === null,
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
      enroll: enrollHandler({ spool: o.spool, log: o.log, tokenSecret: o.tokenSecret }),
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
    // An operator's change in progress (revoke, accept-chain) lands before this stream reads the state.
    await this.changing.get(agentId);
    return this.o.spool.getAgent(agentId);
  }

  /**
   * Changes an agent's stored state (revoke, accept a chain): its live stream is
   * stopped and drained first, so no commit in flight overwrites the change.
   */
  async updateAgent(agentId: string, change: (s: AgentState) => void): Promise<AgentState | undefined> {
    const run = (async () => {
      await this.changing.get(agentId);
      const live = this.sessions.get(agentId);
      if (live) {
        live.cancel('an operator changed this agent');
        await live.drained().catch(() => undefined);
      }
      const state = await this.o.spool.getAgent(agentId);
      if (!state) return undefined;
      change(state);
      await this.o.spool.putAgent(state);
      return state;
    })();
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.changing.set(agentId, settled);
    try {
      return await run;
    } finally {
      if (this.changing.get(agentId) === settled) this.changing.delete(agentId);
    }
  }

  get isListening(): boolean {
    return this.listening;
  }

  async start(): Promise<void> {
    const tls = this.o.tls;
    const creds = tls
      ? grpc.ServerCredentials.createSsl(
          tls.clientCa ?? null,
          [{ cert_chain: tls.cert, private_key: tls.key }],
          !!tls.clientCa,
        )
      : grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.o.listen, creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    setConnectionWindow(this.server, this.windowBytes);
    this.boundAddress = `${this.o.listen.slice(0, this.o.listen.lastIndexOf(':'))}:${port}`;
    this.listening = true;
    if (tls)
      this.o.log.info({ listen: this.boundAddress, mutual_tls: !!tls.clientCa }, 'gRPC listening with TLS');
    else
      this.o.log.warn(
        { listen: this.boundAddress },
        'gRPC listening without TLS (insecure: true); agents are trusted on first use: use on loopback only',
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
