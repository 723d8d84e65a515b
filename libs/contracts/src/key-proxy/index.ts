export * from './key-proxy-schemas.ts';
