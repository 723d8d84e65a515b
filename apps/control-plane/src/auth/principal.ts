import type { AppAbility } from '../access/ability-factory.ts';

/** Who is calling: a user of one organization, possibly through an API token. */
export interface Principal {
  orgId: string;
  userId: string;
  roleId: string;
  roleName: string;
  /** set when the caller authenticated with an API token */
  tokenId: string | null;
  scopes: readonly string[] | null;
  ability: AppAbility;
  /** the audit log's actor string */
  actor: string;
}

/** The audit payload fields that say how the actor authenticated. */
export function authOf(principal: Principal): Record<string, unknown> {
  return principal.tokenId == null ? {} : { auth: { method: 'api-token', tokenId: principal.tokenId } };
}
