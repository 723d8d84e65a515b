import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import { RequirePermission } from '../access/require-permission.decorator.ts';
import type { Principal } from '../auth/principal.ts';
import { Caller, RequestId } from '../auth/request-context.ts';
import { CreateInvitationInput, CreateInvitationPayload, Invitation } from './invitation.types.ts';
import { InvitationService } from './invitation.service.ts';

@Resolver(() => Invitation)
export class InvitationResolver {
  private readonly service: InvitationService;

  constructor(service: InvitationService) {
    this.service = service;
  }

  @Query(() => [Invitation], { description: 'Invitations of the organization, newest first' })
  @RequirePermission('read', 'Invitation')
  invitations(@Caller() caller: Principal): Promise<Invitation[]> {
    return this.service.list(caller);
  }

  @Mutation(() => CreateInvitationPayload, { description: 'Invites someone by email with a role you hold; the code is in this answer only' })
  @RequirePermission('create', 'Invitation')
  createInvitation(@Caller() caller: Principal, @RequestId() requestId: string, @Args('input') input: CreateInvitationInput): Promise<CreateInvitationPayload> {
    return this.service.create(caller, input, requestId);
  }

  @Mutation(() => Invitation, { description: 'Revokes a pending invitation' })
  @RequirePermission('delete', 'Invitation')
  revokeInvitation(@Caller() caller: Principal, @RequestId() requestId: string, @Args('id', { type: () => ID }) id: string): Promise<Invitation> {
    return this.service.revoke(caller, id, requestId);
  }
}
