export * from './s3rver-server.ts';
export * from './softhsm-token.ts';
export * from './listening-url.ts';
