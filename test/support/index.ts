export * from './s3rver-server.ts';
