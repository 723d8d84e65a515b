import { Field, Float, ID, InputType, Int, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { JsonObjectScalar } from '../graphql/json-scalar.ts';
import { PageInfo } from '../graphql/relay-pagination.ts';
import { LabelPair, LabelPairInput } from '../policies/label.types.ts';

@ObjectType({ description: 'An enrolled agent: a machine identified by its Ed25519 public key (the control plane holds no agent secret)' })
@TypePermission('read', 'Agent')
export class Agent {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field({ description: '"active", "disabled" (refused until enabled) or "removed" (for good)' })
  status!: string;

  @Field({ description: 'a heartbeat arrived within ARCA_CP_AGENT_OFFLINE_SECONDS' })
  online!: boolean;

  @Field(() => [LabelPair])
  labels!: LabelPair[];

  @Field()
  hostname!: string;

  @Field()
  os!: string;

  @Field()
  arch!: string;

  @Field({ description: 'the agent\'s software version' })
  version!: string;

  @Field(() => Float, { nullable: true })
  uptimeSeconds!: number | null;

  @Field(() => [Float], { nullable: true, description: 'load averages over 1, 5 and 15 minutes' })
  load!: number[] | null;

  @Field(() => Float, { nullable: true, description: 'free bytes in the agent\'s data directory' })
  freeBytes!: number | null;

  @Field(() => [JsonObjectScalar], { description: 'what the agent reports it can protect: { kind: "path", path } or { kind: "postgres", database, host?, port? }' })
  inventory!: Record<string, unknown>[];

  @Field({ description: 'JWK thumbprint (RFC 7638) of the agent\'s public key; what job tokens are bound to' })
  keyThumbprint!: string;

  @Field(() => ID, { nullable: true, description: 'the enrollment token it enrolled with' })
  enrolledWith!: string | null;

  @Field(() => Date, { nullable: true })
  lastSeenAt!: Date | null;

  @Field()
  createdAt!: Date;
}

@ObjectType()
@TypePermission('read', 'Agent')
export class AgentEdge {
  @Field()
  cursor!: string;

  @Field(() => Agent)
  node!: Agent;
}

@ObjectType()
@TypePermission('read', 'Agent')
export class AgentConnection {
  @Field(() => [AgentEdge])
  edges!: AgentEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@InputType()
export class AgentFilter {
  @Field(() => [String], { nullable: true, description: 'any of these statuses' })
  statuses?: string[];

  @Field({ nullable: true, description: 'only agents seen (true) or not seen (false) within the offline threshold' })
  online?: boolean;

  @Field(() => [LabelPairInput], { nullable: true, description: 'agents carrying every one of these labels' })
  labels?: LabelPairInput[];
}

@InputType({ description: 'The agent\'s new Ed25519 public key (from `arca agent show-key --json` on the machine)' })
export class RekeyAgentInput {
  @Field(() => ID)
  id!: string;

  @Field({ description: 'the public key\'s "x" (43 base64url characters)' })
  publicKeyX!: string;
}

@InputType()
export class UpdateAgentLabelsInput {
  @Field(() => ID)
  id!: string;

  @Field(() => [LabelPairInput])
  labels!: LabelPairInput[];
}

@ObjectType({ description: 'An enrollment token (its secret is shown only when created)' })
@TypePermission('read', 'Agent')
export class EnrollmentToken {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field(() => [LabelPair], { description: 'labels given to every agent it enrolls (agents cannot override them)' })
  labels!: LabelPair[];

  @Field(() => Int)
  maxUses!: number;

  @Field(() => Int)
  uses!: number;

  @Field()
  expiresAt!: Date;

  @Field(() => Date, { nullable: true })
  revokedAt!: Date | null;

  @Field({ description: '"active", "expired", "used-up" or "revoked"' })
  status!: string;

  @Field()
  createdBy!: string;

  @Field()
  createdAt!: Date;
}

@ObjectType()
@TypePermission('read', 'Agent')
export class EnrollmentTokenEdge {
  @Field()
  cursor!: string;

  @Field(() => EnrollmentToken)
  node!: EnrollmentToken;
}

@ObjectType()
@TypePermission('read', 'Agent')
export class EnrollmentTokenConnection {
  @Field(() => [EnrollmentTokenEdge])
  edges!: EnrollmentTokenEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@InputType()
export class EnrollmentTokenFilter {
  @Field(() => [String], { nullable: true, description: 'any of "active", "expired", "used-up", "revoked"' })
  statuses?: string[];
}

@ObjectType()
@TypePermission('create', 'Agent')
export class CreatedEnrollmentToken {
  @Field({ description: 'arca_enr_… — shown once: give it to `arca agent enroll --token`' })
  token!: string;

  @Field(() => EnrollmentToken)
  enrollmentToken!: EnrollmentToken;
}

@InputType()
export class CreateEnrollmentTokenInput {
  @Field()
  name!: string;

  @Field(() => [LabelPairInput], { nullable: true })
  labels?: LabelPairInput[];

  @Field(() => Int, { nullable: true, description: 'agents it may enroll (default 1, at most 100,000)' })
  maxUses?: number;

  @Field(() => Int, { nullable: true, description: '1-720 hours (default 24)' })
  expiresInHours?: number;
}
