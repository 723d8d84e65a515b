import type { JobOperation } from '@arca/crypto';

/**
 * One audit event (docs/key-proxy.md §6): who asked what for which store and job, how many keys,
 * and whether it was issued or refused. Never key material, tokens, proofs or envelope ciphertext.
 */
export type AuditOperation = 'master-key' | 'agent-keys' | 'keys' | 'rewrap' | 'grant-approve' | 'grant-revoke' | 'request';

export interface AuditEvent {
  /** ISO 8601 */
  time: string;
  org: string | null;
  agent: string | null;
  store: string | null;
  job: string | null;
  /** what was asked: an endpoint (`master-key`, `agent-keys`, `keys`, `rewrap`), a custodian's grant change, or `request` when the route is unknown */
  operation: AuditOperation;
  /** `keys` only */
  purpose: 'read' | 'write' | null;
  /** blob keys issued (or asked, when refused) */
  blobKeys: number;
  /** file keys issued (or asked, when refused) */
  fileKeys: number;
  outcome: 'success' | 'refused';
  /** error code, when refused */
  code?: string;
  /** why it was refused (the error message returned to the caller) */
  reason?: string;
  requestId: string | null;
  agentKeyThumbprint: string | null;
  /** the job token's operations and ID */
  tokenOps?: JobOperation[];
  tokenId?: string;
  /** KEK reference of a created or rewrapped envelope (not secret) */
  kek?: string;
  /** grant changes: the operations granted and the custodian's note */
  grantOps?: JobOperation[];
  note?: string;
}

/** An event as stored and delivered: its position in this proxy's hash-chained log. */
export interface StoredAuditEvent extends AuditEvent {
  proxy: string;
  seq: number;
  /** SHA-256 (hex) of the previous event's hash and this event's JSON: the chain `audit verify` checks */
  hash: string;
}
