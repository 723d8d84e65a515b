import { Field, ID, InputType, Int, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';

@ObjectType({ description: 'An API token (its secret is never returned after creation)' })
@TypePermission('read', 'ApiToken')
export class ApiToken {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field(() => ID, { description: 'the user the token acts for' })
  userId!: string;

  @Field(() => [String], { description: '"action:Subject" permissions the token is limited to, or "*"' })
  scopes!: string[];

  @Field()
  expiresAt!: Date;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  lastUsedAt!: Date | null;

  @Field()
  createdAt!: Date;
}

@ObjectType()
@TypePermission('create', 'ApiToken')
export class CreateApiTokenPayload {
  @Field({ description: 'the token: shown this once, store it now' })
  token!: string;

  @Field(() => ApiToken)
  apiToken!: ApiToken;
}

@InputType()
export class CreateApiTokenInput {
  @Field()
  name!: string;

  @Field(() => [String], { description: '"action:Subject" (e.g. "read:AuditEvent") or "*" for everything your role allows' })
  scopes!: string[];

  @Field(() => Int, { nullable: true, description: 'lifetime in days, 1-365 (default 90)' })
  expiresInDays?: number;
}
