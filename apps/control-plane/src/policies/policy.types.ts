import { Field, ID, InputType, Int, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { LabelSelectorTerm, LabelSelectorTermInput } from './label.types.ts';

@ObjectType({ description: 'How many snapshots forget keeps: the newest of each of the N latest buckets, 0 off (restic semantics)' })
@TypePermission('read', 'Policy')
export class Retention {
  @Field(() => Int, { nullable: true })
  keepLast?: number;

  @Field(() => Int, { nullable: true })
  keepHourly?: number;

  @Field(() => Int, { nullable: true })
  keepDaily?: number;

  @Field(() => Int, { nullable: true })
  keepWeekly?: number;

  @Field(() => Int, { nullable: true })
  keepMonthly?: number;

  @Field(() => Int, { nullable: true })
  keepYearly?: number;
}

@ObjectType({ description: 'An SLA domain: schedule, RPO, retention, copies and restore tests, assigned to resources by labels' })
@TypePermission('read', 'Policy')
export class Policy {
  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;

  @Field({ description: '5-field cron expression, evaluated in `timezone`' })
  schedule!: string;

  @Field({ description: 'IANA time zone' })
  timezone!: string;

  @Field(() => Int)
  rpoMinutes!: number;

  @Field(() => Retention, { nullable: true, description: 'null: snapshots are never forgotten' })
  retention!: Retention | null;

  @Field(() => ID, { description: 'the store backups go to' })
  storeId!: string;

  @Field(() => ID, { nullable: true, description: 'the second store snapshots are replicated to (3-2-1)' })
  copyStoreId!: string | null;

  @Field(() => Int, { nullable: true })
  restoreTestEveryDays!: number | null;

  @Field(() => [LabelSelectorTerm], { description: 'resources whose effective labels match every term; empty: every resource' })
  selector!: LabelSelectorTerm[];

  @Field(() => Int, { description: 'lower wins when several policies match a resource' })
  priority!: number;

  @Field()
  enabled!: boolean;

  @Field(() => Date, { nullable: true, description: 'the next slot (null while disabled)' })
  nextRunAt!: Date | null;

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;
}

@InputType()
export class RetentionInput {
  @Field(() => Int, { nullable: true })
  keepLast?: number;

  @Field(() => Int, { nullable: true })
  keepHourly?: number;

  @Field(() => Int, { nullable: true })
  keepDaily?: number;

  @Field(() => Int, { nullable: true })
  keepWeekly?: number;

  @Field(() => Int, { nullable: true })
  keepMonthly?: number;

  @Field(() => Int, { nullable: true })
  keepYearly?: number;
}

@InputType()
export class CreatePolicyInput {
  @Field()
  name!: string;

  @Field({ description: 'e.g. "0 2 * * *"' })
  schedule!: string;

  @Field({ nullable: true, description: 'default "UTC"' })
  timezone?: string;

  @Field(() => Int, { description: 'the recovery point objective, in minutes' })
  rpoMinutes!: number;

  @Field(() => RetentionInput, { nullable: true })
  retention?: RetentionInput;

  @Field(() => ID)
  storeId!: string;

  @Field(() => ID, { nullable: true })
  copyStoreId?: string;

  @Field(() => Int, { nullable: true })
  restoreTestEveryDays?: number;

  @Field(() => [LabelSelectorTermInput], { nullable: true, description: 'default: every resource' })
  selector?: LabelSelectorTermInput[];

  @Field(() => Int, { nullable: true, description: 'default 100' })
  priority?: number;

  @Field({ nullable: true, description: 'default true' })
  enabled?: boolean;
}

@InputType({ description: 'Omitted fields stay as they are; `clear` names nullable fields to unset' })
export class UpdatePolicyInput {
  @Field(() => ID)
  id!: string;

  @Field({ nullable: true })
  name?: string;

  @Field({ nullable: true })
  schedule?: string;

  @Field({ nullable: true })
  timezone?: string;

  @Field(() => Int, { nullable: true })
  rpoMinutes?: number;

  @Field(() => RetentionInput, { nullable: true })
  retention?: RetentionInput;

  @Field(() => ID, { nullable: true })
  storeId?: string;

  @Field(() => ID, { nullable: true })
  copyStoreId?: string;

  @Field(() => Int, { nullable: true })
  restoreTestEveryDays?: number;

  @Field(() => [LabelSelectorTermInput], { nullable: true })
  selector?: LabelSelectorTermInput[];

  @Field(() => Int, { nullable: true })
  priority?: number;

  @Field({ nullable: true })
  enabled?: boolean;

  @Field(() => [String], { nullable: true, description: 'any of "retention", "copyStoreId", "restoreTestEveryDays"' })
  clear?: string[];
}
