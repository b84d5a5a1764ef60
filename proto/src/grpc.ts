/**
 * A small typed bridge between protobuf-es service descriptors and @grpc/grpc-js:
 * grpc-js wants a ServiceDefinition with serialize/deserialize per method; we
 * derive it from the generated descriptor so the wire types stay the generated ones.
 */

import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import * as grpc from '@grpc/grpc-js';

function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  const input = method.input as DescMessage;
  const output = method.output as DescMessage;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
    responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
    // A request already encoded (the agent's batches, encodeBatchRequest) goes as it is.
    requestSerialize: (m: unknown) =>
      Buffer.isBuffer(m) ? m : Buffer.from(toBinary(input, m as MessageShape<DescMessage>)),
    requestDeserialize: (b: Buffer) => fromBinary(input, b),
    responseSerialize: (m: unknown) => Buffer.from(toBinary(output, m as MessageShape<DescMessage>)),
    responseDeserialize: (b: Buffer) => fromBinary(output, b),
    originalName: method.localName,
  };
}

/** grpc-js ServiceDefinition keyed by each method's local (camelCase) name. */
export function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) def[m.localName] = methodDefinition(m);
  return def;
}

type In<M> = M extends { input: infer I extends DescMessage } ? MessageShape<I> : never;
type Out<M> = M extends { output: infer O extends DescMessage } ? MessageShape<O> : never;
type OutInit<M> = M extends { output: infer O extends DescMessage } ? MessageInitShape<O> : never;

/** Server handlers typed from the descriptor: one per method, by kind. */
export type ServiceHandlers<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]['methodKind'] extends 'unary'
    ? grpc.handleUnaryCall<In<T[K]>, Out<T[K]>>
    : T[K]['methodKind'] extends 'bidi_streaming'
      ? grpc.handleBidiStreamingCall<In<T[K]>, Out<T[K]>>
      : T[K]['methodKind'] extends 'server_streaming'
        ? grpc.handleServerStreamingCall<In<T[K]>, Out<T[K]>>
        : grpc.handleClientStreamingCall<In<T[K]>, Out<T[K]>>;
};

export function addService<T extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<T>,
  handlers: ServiceHandlers<T>,
): void {
  server.addService(serviceDefinition(service), handlers as unknown as grpc.UntypedServiceImplementation);
}

/** Client calls typed from the descriptor. Unary calls return promises. */
export type ServiceClient<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]['methodKind'] extends 'unary'
    ? (request: In<T[K]>, options?: grpc.CallOptions) => Promise<Out<T[K]>>
    : T[K]['methodKind'] extends 'bidi_streaming'
      ? (options?: grpc.CallOptions) => grpc.ClientDuplexStream<In<T[K]>, Out<T[K]>>
      : never;
} & { readonly raw: grpc.Client; close(): void };

export function createClient<T extends GenServiceMethods>(
  service: GenService<T>,
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ClientOptions = {},
): ServiceClient<T> {
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service), service.typeName);
  const raw = new Ctor(address, credentials, options);
  const client: Record<string, unknown> = { raw, close: () => raw.close() };
  for (const m of service.methods) {
    const call = (raw as unknown as Record<string, (...args: unknown[]) => unknown>)[m.localName]!.bind(raw);
    if (m.methodKind === 'unary') {
      client[m.localName] = (request: unknown, opts: grpc.CallOptions = {}) =>
        new Promise((resolve, reject) => {
          call(request, new grpc.Metadata(), opts, (err: grpc.ServiceError | null, res: unknown) =>
            err ? reject(err) : resolve(res),
          );
        });
    } else if (m.methodKind === 'bidi_streaming') {
      client[m.localName] = (opts: grpc.CallOptions = {}) => call(new grpc.Metadata(), opts);
    }
  }
  return client as ServiceClient<T>;
}

/** Builds a message of a generated type; re-exported so callers need one import. */
export function message<D extends DescMessage>(schema: D, init?: MessageInitShape<D>): MessageShape<D> {
  return create(schema, init);
}

export type { OutInit };
