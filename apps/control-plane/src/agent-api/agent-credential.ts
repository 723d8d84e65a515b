import { AGENT_CREDENTIAL_PREFIX } from '@arca/contracts';
import { uuidBytes, uuidString } from '../auth/api-token-format.ts';

/**
 * The agent credential (docs/fleet.md §2): `arca_agt_` + base64url(orgId[16] ‖ agentId[16]). It is
 * not a secret — possession of the agent's Ed25519 key, proven on every request, is what
 * authenticates — it names the agent so the server finds it inside its tenant without bypassing
 * row-level security.
 */
export function agentCredential(orgId: string, agentId: string): string {
  return AGENT_CREDENTIAL_PREFIX + Buffer.concat([uuidBytes(orgId), uuidBytes(agentId)]).toString('base64url');
}

const BODY = /^[A-Za-z0-9_-]{43}$/;

/** Null for anything that is not a well-formed credential (never throws on hostile input). */
export function parseAgentCredential(credential: string): { orgId: string; agentId: string } | null {
  if (!credential.startsWith(AGENT_CREDENTIAL_PREFIX)) return null;
  const body = credential.slice(AGENT_CREDENTIAL_PREFIX.length);
  if (!BODY.test(body)) return null;
  const bytes = Buffer.from(body, 'base64url');
  if (bytes.length !== 32) return null;
  return { orgId: uuidString(bytes.subarray(0, 16)), agentId: uuidString(bytes.subarray(16)) };
}
