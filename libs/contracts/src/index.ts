/** Wire types and runtime schemas (zod) shared by the agent, the control plane and the key proxy. */
export * from './key-proxy/index.ts';
export * from './agent-api/index.ts';
