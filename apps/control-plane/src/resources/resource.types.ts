import { Field, ID, InputType, ObjectType } from '@nestjs/graphql';
import { TypePermission } from '../access/require-permission.decorator.ts';
import { LabelPair, LabelPairInput } from '../policies/label.types.ts';

@ObjectType({ description: 'Something an agent protects: directories, or a PostgreSQL database' })
@TypePermission('read', 'Resource')
export class Resource {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  agentId!: string;

  @Field()
  name!: string;

  @Field({ description: '"path" or "postgres"' })
  kind!: string;

  @Field(() => [String], { description: 'path: absolute paths backed up' })
  paths!: string[];

  @Field(() => [String], { description: 'path: exclude patterns (gitignore syntax)' })
  excludes!: string[];

  @Field(() => String, { nullable: true, description: 'postgres: the database name' })
  database!: string | null;

  @Field(() => [LabelPair], { description: 'the resource\'s own labels' })
  labels!: LabelPair[];

  @Field(() => [LabelPair], { description: 'the agent\'s labels overlaid by the resource\'s: what policy selectors and label permissions see' })
  effectiveLabels!: LabelPair[];

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;
}

@InputType()
export class CreateResourceInput {
  @Field(() => ID)
  agentId!: string;

  @Field({ description: 'unique in the organization, 1-200 characters' })
  name!: string;

  @Field({ description: '"path" or "postgres"' })
  kind!: string;

  @Field(() => [String], { nullable: true, description: 'path: absolute paths (1-100)' })
  paths?: string[];

  @Field(() => [String], { nullable: true })
  excludes?: string[];

  @Field({ nullable: true, description: 'postgres: the database name' })
  database?: string;

  @Field(() => [LabelPairInput], { nullable: true })
  labels?: LabelPairInput[];
}

@InputType({ description: 'Omitted fields stay as they are' })
export class UpdateResourceInput {
  @Field(() => ID)
  id!: string;

  @Field({ nullable: true })
  name?: string;

  @Field(() => [String], { nullable: true })
  paths?: string[];

  @Field(() => [String], { nullable: true })
  excludes?: string[];

  @Field({ nullable: true })
  database?: string;

  @Field(() => [LabelPairInput], { nullable: true, description: 'replaces every label' })
  labels?: LabelPairInput[];
}
