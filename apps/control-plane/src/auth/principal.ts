import type { AppAbility } from '../access/ability-factory.ts';

/** Who is calling: a user of one organization, through an API token or a dashboard session. */
export interface Principal {
  orgId: string;
  userId: string;
  roleId: string;
  roleName: string;
  /** set when the caller authenticated with an API token */
  tokenId: string | null;
  /** set when the caller authenticated with a session cookie */
  sessionId: string | null;
  scopes: readonly string[] | null;
  ability: AppAbility;
  /** the audit log's actor string */
  actor: string;
}

/** The audit payload fields that say how the actor authenticated. */
export function authOf(principal: Principal): Record<string, unknown> {
  if (principal.tokenId != null) return { auth: { method: 'api-token', tokenId: principal.tokenId } };
  if (principal.sessionId != null) return { auth: { method: 'session', sessionId: principal.sessionId } };
  return {};
}
