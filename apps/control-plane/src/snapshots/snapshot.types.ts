import { Field, Float, ID, InputType, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { PageInfo } from '../graphql/relay-pagination.ts';

/**
 * The catalog: snapshot metadata as agents report it — sizes and counts only, never file names
 * or contents (docs/fleet.md §3). Readable by whoever may read jobs' results: a snapshot is one.
 */
@ObjectType({ description: 'A snapshot in the catalog (metadata only)' })
@TypePermission('read', 'Store')
export class Snapshot {
  @Field(() => ID, { description: 'the store row' })
  storeId!: string;

  @Field({ description: '64 hex' })
  snapshotId!: string;

  @Field(() => ID, { nullable: true })
  resourceId!: string | null;

  @Field(() => ID, { nullable: true })
  agentId!: string | null;

  @Field(() => ID, { nullable: true })
  jobId!: string | null;

  @Field()
  time!: Date;

  @Field()
  hostname!: string;

  @Field(() => [String])
  tags!: string[];

  @Field(() => String, { nullable: true })
  parent!: string | null;

  @Field(() => Float)
  totalBytes!: number;

  @Field(() => Float)
  fileCount!: number;

  @Field(() => Float)
  dirCount!: number;

  @Field(() => Float)
  newBytes!: number;

  @Field(() => Float)
  storedBytes!: number;

  @Field(() => Float)
  durationMs!: number;

  @Field(() => Date, { nullable: true, description: 'when a forget job removed it' })
  removedAt!: Date | null;
}

@ObjectType()
@TypePermission('read', 'Store')
export class SnapshotEdge {
  @Field()
  cursor!: string;

  @Field(() => Snapshot)
  node!: Snapshot;
}

@ObjectType()
@TypePermission('read', 'Store')
export class SnapshotConnection {
  @Field(() => [SnapshotEdge])
  edges!: SnapshotEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@InputType()
export class SnapshotFilter {
  @Field(() => ID, { nullable: true })
  storeId?: string;

  @Field(() => ID, { nullable: true })
  resourceId?: string;

  @Field({ nullable: true, description: 'inclusive' })
  from?: Date;

  @Field({ nullable: true, description: 'exclusive' })
  to?: Date;

  @Field({ nullable: true, description: 'include snapshots removed by forget (default false)' })
  includeRemoved?: boolean;
}
