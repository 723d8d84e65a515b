import { Field, ID, InputType, Int, ObjectType, registerEnumType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';

export const InvitationStatus = { PENDING: 'pending', ACCEPTED: 'accepted', EXPIRED: 'expired', REVOKED: 'revoked' } as const;
export type InvitationStatus = (typeof InvitationStatus)[keyof typeof InvitationStatus];
registerEnumType(InvitationStatus, { name: 'InvitationStatus' });

@ObjectType({ description: 'An invitation to join the organization with a role (its code is never returned after creation)' })
@TypePermission('read', 'Invitation')
export class Invitation {
  @Field(() => ID)
  id!: string;

  @Field({ description: 'the address the invitee must sign in with (verified by the identity provider)' })
  email!: string;

  @Field(() => ID)
  roleId!: string;

  @Field()
  roleName!: string;

  @Field(() => InvitationStatus)
  status!: InvitationStatus;

  @Field({ description: '"user:<id>", or "system" for an organization\'s bootstrap link' })
  createdBy!: string;

  @Field()
  createdAt!: Date;

  @Field()
  expiresAt!: Date;

  @Field(() => Date, { nullable: true })
  acceptedAt!: Date | null;

  @Field(() => ID, { nullable: true, description: 'the user the invitation became' })
  acceptedUserId!: string | null;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;
}

@ObjectType()
@TypePermission('create', 'Invitation')
export class CreateInvitationPayload {
  @Field({ description: 'the single-use invitation code (arca_inv_…): shown this once' })
  code!: string;

  @Field(() => String, { nullable: true, description: 'the sign-in link to send the invitee (null when OIDC sign-in is not configured)' })
  url!: string | null;

  @Field(() => Invitation)
  invitation!: Invitation;
}

@InputType()
export class CreateInvitationInput {
  @Field()
  email!: string;

  @Field(() => ID)
  roleId!: string;

  @Field(() => Int, { nullable: true, description: 'validity in hours, 1-720 (default 72)' })
  expiresInHours?: number;
}
