export type { MessageInitShape, MessageShape } from '@bufbuild/protobuf';
export * from '../gen/sealtrail/v1/ingest_pb.js';
export * from './batch.js';
export * from './grpc.js';
