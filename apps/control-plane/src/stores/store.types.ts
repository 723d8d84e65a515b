import { Field, ID, InputType, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { LabelPair, LabelPairInput } from '../policies/label.types.ts';

@ObjectType({ description: 'An Arca store registered with the control plane (its credentials are never readable)' })
@TypePermission('read', 'Store')
export class Store {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field({ description: '"fs" or "s3"' })
  kind!: string;

  @Field({ description: 'the backend URL (a path for fs, s3://bucket/prefix?... for s3); never carries credentials' })
  url!: string;

  @Field({ description: 'the Arca store ID (64 hex) named in job tokens' })
  storeId!: string;

  @Field()
  keyProxyUrl!: string;

  @Field({ description: 'S3 Object Lock / no deletion: forget and prune jobs are refused' })
  immutable!: boolean;

  @Field(() => [LabelPair])
  labels!: LabelPair[];

  @Field({ description: '"initializing" (its init job has not succeeded yet), "ready" or "failed"' })
  status!: string;

  @Field({ description: 'whether backend credentials are stored (sealed; handed only to agents inside a job lease)' })
  hasCredentials!: boolean;

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;
}

@InputType({ description: 'S3 credentials; stored sealed, never returned' })
export class StoreCredentialsInput {
  @Field()
  accessKeyId!: string;

  @Field()
  secretAccessKey!: string;

  @Field({ nullable: true })
  sessionToken?: string;

  @Field({ nullable: true })
  region?: string;

  @Field({ nullable: true })
  endpoint?: string;
}

@InputType()
export class CreateStoreInput {
  @Field({ description: 'unique in the organization, 1-200 characters' })
  name!: string;

  @Field({ description: '"fs" or "s3"' })
  kind!: string;

  @Field({ description: 'fs: an absolute path on the agents; s3: s3://bucket/prefix' })
  url!: string;

  @Field(() => StoreCredentialsInput, { nullable: true })
  credentials?: StoreCredentialsInput;

  @Field({ nullable: true, description: 'default: ARCA_CP_KEY_PROXY_URL' })
  keyProxyUrl?: string;

  @Field({ nullable: true, description: 'default false' })
  immutable?: boolean;

  @Field(() => [LabelPairInput], { nullable: true })
  labels?: LabelPairInput[];

  @Field(() => ID, { description: 'the agent that initializes the store (asks the key proxy for its master key and writes its config)' })
  initAgentId!: string;
}

@InputType({ description: 'Omitted fields stay as they are' })
export class UpdateStoreInput {
  @Field(() => ID)
  id!: string;

  @Field(() => [LabelPairInput], { nullable: true, description: 'replaces every label' })
  labels?: LabelPairInput[];

  @Field(() => StoreCredentialsInput, { nullable: true, description: 'rotates the credentials' })
  credentials?: StoreCredentialsInput;

  @Field({ nullable: true, description: 'true removes them (the store then relies on the agents\' own environment)' })
  clearCredentials?: boolean;

  @Field({ nullable: true, description: 'can be switched on; switching it off is refused (retention could then delete what was promised immutable)' })
  immutable?: boolean;
}
