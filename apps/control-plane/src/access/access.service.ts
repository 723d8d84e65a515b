import { subject as asSubject } from '@casl/ability';
import { Injectable } from '@nestjs/common';
import { AuditLogService } from '../audit/audit-log.service.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import { MetricsService } from '../ops/metrics.service.ts';
import { authOf, type Principal } from '../auth/principal.ts';
import type { Action, SubjectType } from './permissions.ts';

/** A refusal waiting to be audited once the caller's transaction has rolled back. */
export interface PendingDenial {
  orgId: string;
  actor: string;
  payload: Record<string, unknown>;
  requestId: string | null;
}

const pendingDenials = new WeakMap<ControlPlaneError, PendingDenial>();

/**
 * The one place that answers "may this caller do this to these objects?", in bulk: services pass
 * every object they are about to touch and get the allowed subset (filter) or a refusal
 * (require). Conditions (own objects, resource labels) are evaluated on each object. Mutating
 * service methods call `require` first, before any write.
 *
 * Every refusal is audited — after the fact: `deny` attaches the audit record to the error, and
 * the guard or the DenialAuditInterceptor writes it once the failed transaction is gone (writing
 * from inside it would be rolled back, and the embedded database has a single connection).
 */
@Injectable()
export class AccessService {
  private readonly audit: AuditLogService;
  private readonly metrics: MetricsService;

  constructor(audit: AuditLogService, metrics: MetricsService) {
    this.audit = audit;
    this.metrics = metrics;
  }

  /** True when some rule lets the caller `action` some `subject` (conditions not yet applied). */
  canSome(principal: Principal, action: Action, subject: SubjectType): boolean {
    return principal.ability.can(action, subject);
  }

  /** The objects the caller may `action`, in their original order. */
  filter<T extends object>(principal: Principal, action: Action, subject: SubjectType, objects: readonly T[]): T[] {
    return objects.filter((o) => principal.ability.can(action, asSubject(subject, { ...o }) as never));
  }

  /** Throws FORBIDDEN unless the caller may `action` every object (or, without objects, the type). */
  require<T extends object>(principal: Principal, action: Action, subject: SubjectType, objects?: readonly T[], requestId?: string | null): void {
    const allowed = objects == null ? this.canSome(principal, action, subject) : this.filter(principal, action, subject, objects).length === objects.length;
    if (!allowed) this.deny(principal, action, subject, requestId ?? null);
  }

  deny(principal: Principal, action: Action, subject: SubjectType, requestId: string | null, detail?: string): never {
    this.metrics.permissionDenials.inc({ subject });
    const error = new ControlPlaneError(
      ControlPlaneErrorCode.Forbidden,
      detail ?? `your role (${principal.roleName})${principal.tokenId == null ? '' : ' or your token\'s scopes'} does not allow ${action} on ${subject}`,
    );
    pendingDenials.set(error, {
      orgId: principal.orgId,
      actor: principal.actor,
      payload: { permission: `${action}:${subject}`, role: principal.roleName, ...(detail == null ? {} : { detail }), ...authOf(principal) },
      requestId,
    });
    throw error;
  }

  /** Writes the audit entry of a refusal thrown by `deny` (once; other errors are ignored). */
  async recordDenial(err: unknown): Promise<void> {
    if (!(err instanceof ControlPlaneError)) return;
    const denial = pendingDenials.get(err);
    if (denial == null) return;
    pendingDenials.delete(err);
    await this.audit.appendStandalone(denial.orgId, { actor: denial.actor, action: 'authz.denied', target: '', payload: denial.payload, requestId: denial.requestId });
  }
}
