/** Why a job token or proof was refused. Messages never contain the token itself. */
export const TokenErrorCode = {
  TokenInvalid: 'TOKEN_INVALID',
  TokenExpired: 'TOKEN_EXPIRED',
  ProofInvalid: 'PROOF_INVALID',
  ProofReplayed: 'PROOF_REPLAYED',
} as const;
export type TokenErrorCode = (typeof TokenErrorCode)[keyof typeof TokenErrorCode];

export class TokenError extends Error {
  readonly code: TokenErrorCode;

  constructor(code: TokenErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'TokenError';
    this.code = code;
  }
}
