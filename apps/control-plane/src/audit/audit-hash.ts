import { createHash } from 'node:crypto';

/** prev_hash of an organization's first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/** What an entry's hash commits to, besides the previous hash. */
export interface AuditEntryContent {
  orgId: string;
  seq: number;
  time: Date;
  actor: string;
  action: string;
  target: string;
  payload: Record<string, unknown>;
  requestId: string | null;
  source: string | null;
}

/**
 * JSON with object keys sorted at every level and no whitespace. Postgres jsonb does not keep key
 * order, so the hash must not depend on it; numbers and strings print as JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * hash = SHA-256(prevHash ‖ "\n" ‖ canonical JSON of the entry), hex. Each entry commits to its
 * position (org, seq) and to its predecessor, so editing, deleting or reordering any entry breaks
 * every hash after it.
 */
export function auditEntryHash(prevHash: string, entry: AuditEntryContent): string {
  const content = canonicalJson({
    v: 1,
    org: entry.orgId,
    seq: entry.seq,
    time: entry.time.toISOString(),
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    payload: entry.payload,
    requestId: entry.requestId,
    source: entry.source,
  });
  return createHash('sha256').update(prevHash).update('\n').update(content).digest('hex');
}
