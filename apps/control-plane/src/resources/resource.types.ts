import { Field, ID, InputType, Int, ObjectType } from '@nestjs/graphql';
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

  @Field(() => String, { nullable: true, description: 'postgres: the host (name, IP address or Unix-socket directory) the agent connects to; null: libpq\'s default on the agent' })
  databaseHost!: string | null;

  @Field(() => Int, { nullable: true, description: 'postgres: the port; null: libpq\'s default (5432)' })
  databasePort!: number | null;

  @Field(() => String, { nullable: true, description: 'postgres: the role pg_dump connects as; null: libpq\'s default (the agent\'s OS user). Passwords are never stored here: the agent\'s machine holds them (~/.pgpass, PGPASSFILE) or uses peer authentication' })
  databaseUser!: string | null;

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

  @Field({ nullable: true, description: 'postgres: host name, IP address or absolute Unix-socket directory (default: libpq\'s on the agent)' })
  databaseHost?: string;

  @Field(() => Int, { nullable: true, description: 'postgres: port (default 5432)' })
  databasePort?: number;

  @Field({ nullable: true, description: 'postgres: the role to connect as (no password: credentials stay on the agent\'s machine)' })
  databaseUser?: string;

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

  @Field({ nullable: true, description: 'postgres: "" removes the host' })
  databaseHost?: string;

  @Field(() => Int, { nullable: true, description: 'postgres: 0 removes the port' })
  databasePort?: number;

  @Field({ nullable: true, description: 'postgres: "" removes the user' })
  databaseUser?: string;

  @Field(() => [LabelPairInput], { nullable: true, description: 'replaces every label' })
  labels?: LabelPairInput[];
}
