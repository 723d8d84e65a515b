import { Field, InputType, Int, ObjectType, registerEnumType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { JsonObjectScalar } from '../graphql/json-scalar.ts';
import { PageInfo } from '../graphql/relay-pagination.ts';

export const AuditEventSortField = { SEQ: 'seq', TIME: 'time' } as const;
export type AuditEventSortField = (typeof AuditEventSortField)[keyof typeof AuditEventSortField];
registerEnumType(AuditEventSortField, { name: 'AuditEventSortField' });

export const SortDirection = { ASC: 'asc', DESC: 'desc' } as const;
export type SortDirection = (typeof SortDirection)[keyof typeof SortDirection];
registerEnumType(SortDirection, { name: 'SortDirection' });

@ObjectType({ description: 'One entry of the organization\'s hash-chained audit log' })
@TypePermission('read', 'AuditEvent')
export class AuditEvent {
  @Field(() => String, { description: 'position in the chain (a 64-bit integer, as a string)' })
  seq!: string;

  @Field()
  time!: Date;

  @Field({ description: '"user:<id>", "key-proxy:<proxy id>", "anonymous" or "system"' })
  actor!: string;

  @Field({ description: 'e.g. "role.created", "auth.failed", "key-proxy.keys"' })
  action!: string;

  @Field({ description: '"<type>:<id>", or empty' })
  target!: string;

  @Field(() => JsonObjectScalar)
  payload!: Record<string, unknown>;

  @Field(() => String, { nullable: true })
  requestId!: string | null;

  @Field()
  prevHash!: string;

  @Field()
  hash!: string;
}

@ObjectType()
@TypePermission('read', 'AuditEvent')
export class AuditEventEdge {
  @Field()
  cursor!: string;

  @Field(() => AuditEvent)
  node!: AuditEvent;
}

@ObjectType()
@TypePermission('read', 'AuditEvent')
export class AuditEventConnection {
  @Field(() => [AuditEventEdge])
  edges!: AuditEventEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@InputType()
export class AuditEventFilter {
  @Field(() => [String], { nullable: true, description: 'any of these actions' })
  actions?: string[];

  @Field({ nullable: true })
  actor?: string;

  @Field({ nullable: true })
  target?: string;

  @Field({ nullable: true, description: 'inclusive' })
  from?: Date;

  @Field({ nullable: true, description: 'exclusive' })
  to?: Date;
}

@InputType()
export class AuditEventOrder {
  @Field(() => AuditEventSortField)
  field!: AuditEventSortField;

  @Field(() => SortDirection)
  direction!: SortDirection;
}

@ObjectType({ description: 'Result of recomputing the audit chain' })
@TypePermission('verify', 'AuditEvent')
export class AuditChainVerification {
  @Field()
  valid!: boolean;

  @Field(() => Int)
  checkedEvents!: number;

  @Field(() => String)
  headSeq!: string;

  @Field()
  headHash!: string;

  @Field(() => String, { nullable: true })
  firstInvalidSeq!: string | null;

  @Field(() => String, { nullable: true, description: 'ENTRY_MODIFIED, CHAIN_BROKEN, ENTRIES_MISSING or HEAD_MISMATCH' })
  problem!: string | null;

  @Field()
  message!: string;
}
