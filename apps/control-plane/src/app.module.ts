import { Module, type DynamicModule } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { GraphQLModule } from '@nestjs/graphql';
import type { MercuriusDriverConfig } from '@nestjs/mercurius';
import type { Database } from '@arca/db';
import type { Logger } from 'pino';
import { AccessService } from './access/access.service.ts';
import { AgentApiRoutes } from './agent-api/agent-api-routes.service.ts';
import { AGENT_API_LOGGER, AgentAuthenticator } from './agent-api/agent-authenticator.service.ts';
import { AgentDirectory } from './agent-api/agent-directory.ts';
import { HeartbeatWriter } from './agent-api/heartbeat-writer.ts';
import { JobAccessService } from './agent-api/job-access.service.ts';
import { LeaseRecheck } from './agent-api/lease-recheck.service.ts';
import { AgentResolver } from './agents/agent.resolver.ts';
import { AgentService } from './agents/agent.service.ts';
import { EnrollmentService } from './enrollment/enrollment.service.ts';
import { EnrollmentTokenService } from './enrollment/enrollment-token.service.ts';
import { DenialAuditInterceptor } from './access/denial-audit.interceptor.ts';
import { AuditLogService } from './audit/audit-log.service.ts';
import { AuditQueryService } from './audit/audit-query.service.ts';
import { AuditResolver } from './audit/audit.resolver.ts';
import { KeyProxyIngestController } from './audit/key-proxy-ingest.controller.ts';
import { AuthService } from './auth/auth.service.ts';
import { PermissionGuard } from './auth/permission.guard.ts';
import { PrincipalCache } from './auth/principal-cache.ts';
import type { ControlPlaneConfig } from './config/control-plane-config.ts';
import { CONFIG, DATABASE } from './database/database.tokens.ts';
import { graphqlOptions } from './graphql/graphql-options.ts';
import { AuthController } from './identity/auth.controller.ts';
import { OidcClientService } from './identity/oidc-client.service.ts';
import { SignInService } from './identity/sign-in.service.ts';
import { InvitationResolver } from './invitations/invitation.resolver.ts';
import { InvitationService } from './invitations/invitation.service.ts';
import { HealthController } from './ops/health.controller.ts';
import { Lifecycle } from './ops/lifecycle.ts';
import { MetricsService } from './ops/metrics.service.ts';
import { OrganizationResolver } from './organizations/organization.resolver.ts';
import { OrganizationService } from './organizations/organization.service.ts';
import { RoleResolver } from './roles/role.resolver.ts';
import { RoleService } from './roles/role.service.ts';
import { SessionService } from './sessions/session.service.ts';
import { ApiTokenResolver } from './tokens/api-token.resolver.ts';
import { ApiTokenService } from './tokens/api-token.service.ts';
import { MembershipResolver, UserResolver } from './users/user.resolver.ts';
import { UserService } from './users/user.service.ts';
import { JobCommandService } from './jobs/job-command.service.ts';
import { JobProgressResolver } from './jobs/job-progress.resolver.ts';
import { JobQueryService } from './jobs/job-query.service.ts';
import { JobResolver } from './jobs/job.resolver.ts';
import { PolicyResolver } from './policies/policy.resolver.ts';
import { PolicyService } from './policies/policy.service.ts';
import { ResourceResolver } from './resources/resource.resolver.ts';
import { ResourceService } from './resources/resource.service.ts';
import { CLOCK } from './scheduler/clock.ts';
import { FollowUpService } from './scheduler/follow-up.service.ts';
import { JobAnnouncer } from './scheduler/job-announcer.ts';
import { SchedulerJobs } from './scheduler/scheduler-jobs.ts';
import { SCHEDULER_LOGGER, SchedulerService } from './scheduler/scheduler.service.ts';
import { SnapshotResolver } from './snapshots/snapshot.resolver.ts';
import { SnapshotService } from './snapshots/snapshot.service.ts';
import { StoreCredentialsSealer } from './stores/store-credentials.ts';
import { StoreJobs } from './stores/store-jobs.ts';
import { StoreResolver } from './stores/store.resolver.ts';
import { StoreService } from './stores/store.service.ts';
import { JobEvents } from './jobs/job-events.ts';
import { JobQueueService } from './jobs/job-queue.service.ts';
import { JobWakeups } from './jobs/job-wakeups.ts';
import { LeaseSweeper, SWEEPER_LOGGER } from './jobs/lease-sweeper.service.ts';
import { JobTokenIssuer } from './job-tokens/job-token-issuer.service.ts';
import { JwksController } from './job-tokens/jwks.controller.ts';
import { FleetKeysService } from './secrets/fleet-keys.service.ts';
import { CREDENTIALS_BOX } from './stores/store-credentials.ts';

export interface AppModuleOptions {
  config: ControlPlaneConfig;
  /** opened (and migrated, if asked) by the caller, which also closes it after the app */
  db: Database;
  logger: Logger;
}

/**
 * The control plane's one module (identity, sessions, invitations, RBAC, audit, operations). Feature
 * modules split off when agents, stores and jobs arrive; the folders already follow that cut.
 */
@Module({})
export class AppModule {
  static register(options: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [GraphQLModule.forRoot<MercuriusDriverConfig>(graphqlOptions(options.config, options.logger))],
      controllers: [HealthController, KeyProxyIngestController, AuthController, JwksController],
      providers: [
        { provide: CONFIG, useValue: options.config },
        { provide: DATABASE, useValue: options.db },
        { provide: APP_GUARD, useClass: PermissionGuard },
        { provide: APP_INTERCEPTOR, useClass: DenialAuditInterceptor },
        Lifecycle,
        MetricsService,
        AuditLogService,
        AuditQueryService,
        AccessService,
        PrincipalCache,
        SessionService,
        AuthService,
        OidcClientService,
        SignInService,
        InvitationService,
        OrganizationService,
        RoleService,
        UserService,
        ApiTokenService,
        OrganizationResolver,
        UserResolver,
        MembershipResolver,
        RoleResolver,
        ApiTokenResolver,
        AuditResolver,
        InvitationResolver,
        // fleet: stores, resources, policies, scheduler, jobs and the catalog (cp-policy)
        { provide: CLOCK, useValue: { now: () => new Date() } },
        { provide: SCHEDULER_LOGGER, useValue: options.logger.child({ component: 'scheduler' }) },
        StoreCredentialsSealer,
        StoreJobs,
        StoreService,
        StoreResolver,
        ResourceService,
        ResourceResolver,
        PolicyService,
        PolicyResolver,
        SchedulerJobs,
        JobAnnouncer,
        SchedulerService,
        FollowUpService,
        JobQueryService,
        JobCommandService,
        JobResolver,
        JobProgressResolver,
        SnapshotService,
        SnapshotResolver,
        // fleet runtime: keys, job queue, wake-ups, lease sweeper, job tokens (cp-runtime)
        FleetKeysService,
        { provide: CREDENTIALS_BOX, useExisting: FleetKeysService },
        JobEvents,
        JobWakeups,
        JobQueueService,
        { provide: SWEEPER_LOGGER, useValue: options.logger.child({ component: 'lease-sweeper' }) },
        LeaseSweeper,
        JobTokenIssuer,
        // agents: enrollment, the agent API (/agent/v1) and the agents GraphQL
        { provide: AGENT_API_LOGGER, useValue: options.logger.child({ component: 'agent-api' }) },
        AgentDirectory,
        AgentApiRoutes,
        AgentAuthenticator,
        HeartbeatWriter,
        LeaseRecheck,
        JobAccessService,
        EnrollmentService,
        EnrollmentTokenService,
        AgentService,
        AgentResolver,
      ],
    };
  }
}
