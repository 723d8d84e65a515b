import { Args, Int, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller } from '../auth/request-context.ts';
import { AuditLogService } from './audit-log.service.ts';
import { AuditQueryService } from './audit-query.service.ts';
import { AuditChainVerification, AuditEvent, AuditEventConnection, AuditEventFilter, AuditEventOrder } from './audit.types.ts';

@Resolver(() => AuditEvent)
export class AuditResolver {
  private readonly query: AuditQueryService;
  private readonly log: AuditLogService;

  constructor(query: AuditQueryService, log: AuditLogService) {
    this.query = query;
    this.log = log;
  }

  @Query(() => AuditEventConnection, { description: 'The organization\'s audit log (newest first by default)' })
  @RequirePermission('read', 'AuditEvent')
  auditEvents(
    @Caller() caller: Principal,
    @Args('first', { type: () => Int, nullable: true }) first?: number,
    @Args('after', { nullable: true }) after?: string,
    @Args('filter', { type: () => AuditEventFilter, nullable: true }) filter?: AuditEventFilter,
    @Args('orderBy', { type: () => AuditEventOrder, nullable: true }) orderBy?: AuditEventOrder,
  ): Promise<AuditEventConnection> {
    return this.query.list(caller, { first, after, filter, orderBy });
  }

  @Query(() => AuditChainVerification, { description: 'Recomputes the hash chain and reports the first entry that does not verify' })
  @RequirePermission('verify', 'AuditEvent')
  async verifyAuditChain(@Caller() caller: Principal): Promise<AuditChainVerification> {
    const result = await this.log.verify(caller.orgId);
    return { ...result, headSeq: String(result.headSeq), firstInvalidSeq: result.firstInvalidSeq == null ? null : String(result.firstInvalidSeq) };
  }
}
