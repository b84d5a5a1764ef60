/**
 * The HTTP/2 receive window of the gRPC server. Node's default is 64 KiB per stream and per
 * connection, so a batch of ~420 kB crosses in seven WINDOW_UPDATE round trips, each waiting
 * for the collector's event loop between slices of verification: the agent's window of
 * batches then never fills the collector's pipeline. grpc-js reads
 * `grpc-node.flow_control_window` on the client only (the server side is grpc/grpc-node PR
 * #3058, not released in 1.14), so the server's settings are set here the way that PR does:
 * the SETTINGS frame's initial stream window, and the connection window per session.
 *
 * Memory stays bounded: a paused stream (see Session) is not read, so it holds at most one
 * window of unread bytes.
 */
import type * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';

/** Per stream and per connection; a whole default-size batch (1,000 × ~420 B) fits in one. */
export const DEFAULT_WINDOW_BYTES = 1024 * 1024;

interface ServerInternals {
  commonServerOptions?: { settings?: http2.Settings };
  http2Servers?: Map<http2.Http2Server, unknown>;
}

/** Before `bindAsync`: the stream window every new session advertises. */
export function setStreamWindow(server: grpc.Server, bytes: number): void {
  const s = server as unknown as ServerInternals;
  if (!s.commonServerOptions) return; // a grpc-js without these internals: Node's defaults stay
  s.commonServerOptions.settings = { ...s.commonServerOptions.settings, initialWindowSize: bytes };
}

/** After `bindAsync`: each new connection's window raised to `bytes`. */
export function setConnectionWindow(server: grpc.Server, bytes: number): void {
  const servers = (server as unknown as ServerInternals).http2Servers;
  for (const h2 of servers?.keys() ?? []) {
    h2.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(bytes);
      } catch {
        // A session torn down before it started: nothing to widen.
      }
    });
  }
}
