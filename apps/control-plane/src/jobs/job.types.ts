import { Field, Float, ID, InputType, Int, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { JsonObjectScalar } from '../graphql/json-scalar.ts';
import { PageInfo } from '../graphql/relay-pagination.ts';

@ObjectType({ description: 'One entry of a job\'s history: queued, leased, requeued, log, completed, skipped, ...' })
@TypePermission('read', 'Job')
export class JobEvent {
  @Field(() => Int)
  seq!: number;

  @Field()
  time!: Date;

  @Field()
  kind!: string;

  @Field()
  level!: string;

  @Field()
  message!: string;

  @Field(() => JsonObjectScalar, { nullable: true })
  data!: Record<string, unknown> | null;
}

@ObjectType({ description: 'A unit of work for one agent (docs/fleet.md §3-4)' })
@TypePermission('read', 'Job')
export class Job {
  @Field(() => ID)
  id!: string;

  @Field({ description: 'init, backup, restore, check, replicate, forget or restore-test' })
  kind!: string;

  @Field({ description: 'queued, leased, running, succeeded, partial, failed or cancelled' })
  status!: string;

  @Field(() => ID)
  agentId!: string;

  @Field(() => ID, { nullable: true })
  storeId!: string | null;

  @Field(() => ID, { nullable: true })
  copyStoreId!: string | null;

  @Field(() => ID, { nullable: true })
  resourceId!: string | null;

  @Field(() => ID, { nullable: true })
  policyId!: string | null;

  @Field(() => Date, { nullable: true, description: 'the schedule slot a scheduled backup was created for' })
  scheduledFor!: Date | null;

  @Field(() => JsonObjectScalar)
  spec!: Record<string, unknown>;

  @Field(() => Int)
  attempt!: number;

  @Field(() => Int)
  maxAttempts!: number;

  @Field()
  cancelRequested!: boolean;

  @Field(() => JsonObjectScalar, { nullable: true })
  progress!: Record<string, unknown> | null;

  @Field(() => JsonObjectScalar, { nullable: true })
  result!: Record<string, unknown> | null;

  @Field(() => JsonObjectScalar, { nullable: true, description: '{ code, message, retryable }' })
  error!: Record<string, unknown> | null;

  @Field({ description: 'the audit actor who asked for it, or "scheduler" (scheduled runs and follow-ups)' })
  requestedBy!: string;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  finishedAt!: Date | null;

  @Field()
  updatedAt!: Date;
}

@ObjectType()
@TypePermission('read', 'Job')
export class JobEdge {
  @Field()
  cursor!: string;

  @Field(() => Job)
  node!: Job;
}

@ObjectType()
@TypePermission('read', 'Job')
export class JobConnection {
  @Field(() => [JobEdge])
  edges!: JobEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@InputType()
export class JobFilter {
  @Field(() => [String], { nullable: true, description: 'any of these statuses' })
  statuses?: string[];

  @Field(() => [String], { nullable: true, description: 'any of these kinds' })
  kinds?: string[];

  @Field(() => ID, { nullable: true })
  agentId?: string;

  @Field(() => ID, { nullable: true })
  resourceId?: string;

  @Field(() => ID, { nullable: true })
  policyId?: string;
}

@ObjectType({ description: 'A job\'s progress as it runs (the jobProgress subscription)' })
@TypePermission('read', 'Job')
export class JobProgressUpdate {
  @Field(() => ID)
  jobId!: string;

  @Field()
  status!: string;

  @Field(() => JsonObjectScalar, { nullable: true, description: '{ phase, percent?, bytesDone?, bytesTotal?, filesDone?, filesTotal?, rate? }' })
  progress!: Record<string, unknown> | null;

  @Field(() => JobEvent, { nullable: true, description: 'the event that caused the update, if any' })
  event!: JobEvent | null;
}

@InputType()
export class StartRestoreInput {
  @Field(() => ID, { description: 'the store row the snapshot is in' })
  storeId!: string;

  @Field({ description: 'the snapshot ID (64 hex)' })
  snapshotId!: string;

  @Field({ nullable: true, description: 'the path inside the snapshot (default "/")' })
  path?: string;

  @Field(() => ID)
  targetAgentId!: string;

  @Field({ description: 'an absolute directory on the target agent' })
  targetPath!: string;
}

@InputType()
export class StartCheckInput {
  @Field(() => ID)
  storeId!: string;

  @Field({ nullable: true, description: 'read and verify every pack (default false: structure only)' })
  readData?: boolean;

  @Field(() => Float, { nullable: true, description: 'with readData: the percentage of packs read (1-100)' })
  subsetPercent?: number;

  @Field(() => ID, { nullable: true, description: 'the agent that runs it (default: the one that initialized the store)' })
  agentId?: string;
}
