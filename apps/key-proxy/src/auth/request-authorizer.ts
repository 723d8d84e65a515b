import type { JobOperation, JobTokenClaims } from '@arca/crypto';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import type { GrantStore } from '../grants/grant-store.ts';
import type { Envelope } from '../keys/envelope.ts';
import { ACTION_DESCRIPTIONS, OPERATIONS_ALLOWING, operationsPermitting, type KeyAction } from './operation-policy.ts';
import { shellQuote } from './shell-quote.ts';

/**
 * Decides whether an authenticated request may have what it asks (docs/key-proxy.md §2, §5):
 *   1. the store is the token's: URL store ID = token `store` = envelope `store`, envelope `org` =
 *      token `org` (403 STORE_MISMATCH);
 *   2. one of the token's operations allows the action (403 OPERATION_NOT_ALLOWED);
 *   3. strict mode: a custodian approved the token's agent key for this org and store, for an
 *      operation that allows the action (403 GRANT_REQUIRED, naming the command to run).
 */
export class RequestAuthorizer {
  private readonly grants: GrantStore;
  private readonly strict: boolean;

  constructor(options: { grants: GrantStore; strict: boolean }) {
    this.grants = options.grants;
    this.strict = options.strict;
  }

  authorize(claims: JobTokenClaims, action: KeyAction, target: { urlStore?: string; envelope?: Envelope }): void {
    if (target.urlStore !== undefined && target.urlStore !== claims.store) {
      throw new KeyProxyError(KeyProxyErrorCode.StoreMismatch, 'the job token is for another store than the one in the URL');
    }
    if (target.envelope) {
      if (target.envelope.store !== claims.store) {
        throw new KeyProxyError(
          KeyProxyErrorCode.StoreMismatch,
          'the envelope belongs to another store than the job token\'s: send the envelope from this store\'s own config',
        );
      }
      if (target.envelope.org !== claims.org) {
        throw new KeyProxyError(KeyProxyErrorCode.StoreMismatch, 'the envelope belongs to another organization than the job token\'s');
      }
    }
    const permitting = operationsPermitting(claims.ops, action);
    if (permitting.length === 0) {
      throw new KeyProxyError(
        KeyProxyErrorCode.OperationNotAllowed,
        `the job token allows ${claims.ops.join(', ')}; ${ACTION_DESCRIPTIONS[action]} needs one of: ${OPERATIONS_ALLOWING[action].join(', ')}`,
      );
    }
    if (this.strict) this.checkGrant(claims, action, permitting);
  }

  private checkGrant(claims: JobTokenClaims, action: KeyAction, permitting: JobOperation[]): void {
    const grant = this.grants.find(claims.org, claims.store, claims.cnf.jkt);
    const command = (ops?: readonly JobOperation[]) =>
      `arca-key-proxy grant approve --org ${shellQuote(claims.org)} --store ${claims.store} --agent-key-thumbprint ${claims.cnf.jkt}` +
      (ops ? ` --ops ${ops.join(',')}` : '');
    if (!grant) {
      throw new KeyProxyError(
        KeyProxyErrorCode.GrantRequired,
        `agent key ${claims.cnf.jkt} is not approved for store ${claims.store} of organization ${claims.org} (strict mode); ` +
          `a key custodian must approve it on the key proxy's host: ${command()}`,
      );
    }
    if (!permitting.some((op) => grant.ops.includes(op))) {
      const ops = [...new Set([...grant.ops, ...permitting])];
      throw new KeyProxyError(
        KeyProxyErrorCode.GrantRequired,
        `agent key ${claims.cnf.jkt} is approved for store ${claims.store} only for ${grant.ops.join(', ')}; ` +
          `${ACTION_DESCRIPTIONS[action]} needs one of ${permitting.join(', ')}: a key custodian can extend the grant with: ${command(ops)}`,
      );
    }
  }
}
