/**
 * The `Enroll` RPC: a one-time token in exchange for registering the agent's
 * Ed25519 public key. Refusals say exactly why (used, expired, forged token;
 * an agent id already enrolled with another key).
 */
import * as grpc from '@grpc/grpc-js';
import { uuidBytes } from '@sealtrail/chain';
import type { EnrollRequest, EnrollResponse } from '@sealtrail/proto';
import { EnrollResponseSchema, message } from '@sealtrail/proto';
import type { Logger } from '@sealtrail/telemetry';
import { checkToken } from '../pki/tokens.js';
import { newAgentState, type Spool } from '../spool/spool.js';

export interface EnrollDeps {
  spool: Spool;
  log: Logger;
  /** The token secret; null when the collector has no PKI (plaintext development). */
  tokenSecret: () => Buffer | null;
}

export class EnrollError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export function enrollHandler(deps: EnrollDeps) {
  // Enrollments are serialized: two agents racing with one token cannot both win.
  let chain: Promise<unknown> = Promise.resolve();
  const enroll = async (req: EnrollRequest): Promise<EnrollResponse> => {
    const secret = deps.tokenSecret();
    if (!secret)
      throw new EnrollError(
        grpc.status.FAILED_PRECONDITION,
        'this collector has no enrollment secret; run `sealtrail-collector init`',
      );
    const check = checkToken(secret, req.token);
    if (!check.ok) {
      const why = {
        malformed: 'is malformed',
        bad_signature: 'was not issued by this collector',
        expired: 'has expired',
      }[check.reason];
      throw new EnrollError(grpc.status.UNAUTHENTICATED, `enrollment token ${why}`);
    }
    try {
      uuidBytes(req.agentId);
    } catch {
      throw new EnrollError(
        grpc.status.INVALID_ARGUMENT,
        `agent id ${JSON.stringify(req.agentId)} is not a UUID`,
      );
    }
    if (req.publicKey.length !== 32)
      throw new EnrollError(grpc.status.INVALID_ARGUMENT, 'public key must be 32 raw Ed25519 bytes');
    const key = Buffer.from(req.publicKey).toString('base64');
    const known = await deps.spool.getAgent(req.agentId);
    if (known && known.public_key !== key) {
      throw new EnrollError(
        grpc.status.ALREADY_EXISTS,
        `agent ${req.agentId} is already enrolled with another key`,
      );
    }
    const now = new Date().toISOString();
    const state = known ?? newAgentState(req.agentId, key, req.hostname, now);
    state.enrolled_at = now;
    state.hostname = req.hostname || state.hostname;
    if (!(await deps.spool.enroll(state, check.claims.jti))) {
      throw new EnrollError(grpc.status.UNAUTHENTICATED, 'enrollment token was already used');
    }
    deps.log.info({ agent_id: req.agentId, hostname: req.hostname }, 'agent enrolled');
    return message(EnrollResponseSchema, { agentId: req.agentId });
  };
  return (
    call: grpc.ServerUnaryCall<EnrollRequest, EnrollResponse>,
    callback: grpc.sendUnaryData<EnrollResponse>,
  ) => {
    const run = chain.then(() => enroll(call.request));
    chain = run.catch(() => undefined);
    run.then(
      (res) => callback(null, res),
      (err) => {
        if (err instanceof EnrollError) {
          deps.log.warn({ agent_id: call.request.agentId, reason: err.message }, 'enrollment refused');
          callback({ code: err.code, details: err.message });
        } else {
          deps.log.error({ err }, 'enrollment failed');
          callback({ code: grpc.status.INTERNAL, details: 'enrollment failed on the collector' });
        }
      },
    );
  };
}
