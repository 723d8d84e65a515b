export { TokenError, TokenErrorCode } from './token-error.ts';
export {
  generateAgentIdentity, agentIdentityFromPrivateKey, agentIdentityFromPem, exportAgentPrivateKey, publicJwkOf, jwkThumbprint,
  type AgentIdentity, type Ed25519PublicJwk,
} from './agent-identity.ts';
export {
  issueJobToken, JobTokenVerifier, JOB_OPERATIONS, JOB_TOKEN_TYPE, DEFAULT_KEY_PROXY_AUDIENCE, MAX_JOB_TOKEN_LIFETIME_S, CLOCK_SKEW_S,
  type JobOperation, type JobTokenClaims, type IssueJobTokenInput, type JwksSource,
} from './job-token.ts';
export { createProof, verifyProof, sha256Base64url, PROOF_TYPE, PROOF_WINDOW_S, type ProofRequest } from './proof-of-possession.ts';
export { ReplayCache } from './replay-cache.ts';
