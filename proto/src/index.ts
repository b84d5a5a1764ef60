export * from '../gen/sealtrail/v1/ingest_pb.js';
export * from './grpc.js';
