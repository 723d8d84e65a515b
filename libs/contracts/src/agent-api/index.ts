export * from './agent-api-schemas.ts';
