import { z } from 'zod';
import { POSTGRES_HOST_PATTERN, POSTGRES_NAME_PATTERN } from '@arca/contracts';
import { labelsSchema } from '../policies/label-selector.ts';

/**
 * What a resource protects, as stored in resources.spec. A postgres resource names where its
 * agent connects (libpq defaults, and the agent's own PG* environment, for what it leaves out) and
 * never a password: credentials live on the agent's machine only (~/.pgpass, PGPASSFILE, peer).
 */
export type ResourceSpec = { paths: string[]; excludes: string[] } | PostgresResourceSpec;
export type PostgresResourceSpec = {
  database: string;
  host?: string;
  port?: number;
  user?: string;
};
export const RESOURCE_KINDS = ['path', 'postgres'] as const;

const absolutePath = z.string().min(1).max(4096).refine((p) => p.startsWith('/') && !p.includes('\0'), 'must be an absolute path');
const exclude = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'no NUL characters');
// the agent API's rules (libs/contracts), so that every resource makes a backup spec the agent accepts
const database = z.string().min(1).max(63).regex(POSTGRES_NAME_PATTERN, 'a PostgreSQL database name: letters, digits, "_", "$" and "-"');
const databaseHost = z.string().max(255).refine((h) => h === '' || POSTGRES_HOST_PATTERN.test(h), 'a host name, an IP address or an absolute Unix-socket directory');
const databasePort = z.number().int().min(0).max(65535);
const databaseUser = z.string().max(63).refine((u) => u === '' || POSTGRES_NAME_PATTERN.test(u), 'a PostgreSQL role name: letters, digits, "_", "$" and "-"');
const name = z.string().trim().min(1).max(200);

export const createResourceSchema = z.object({
  agentId: z.uuid('must be an agent ID'),
  name,
  kind: z.enum(RESOURCE_KINDS, 'must be "path" or "postgres"'),
  paths: z.array(absolutePath).max(100).optional(),
  excludes: z.array(exclude).max(1000).optional(),
  database: database.optional(),
  databaseHost: databaseHost.optional(),
  databasePort: databasePort.optional(),
  databaseUser: databaseUser.optional(),
  labels: labelsSchema.default({}),
}).superRefine((v, ctx) => {
  if (v.kind === 'path') {
    if (v.paths == null || v.paths.length === 0) ctx.addIssue({ code: 'custom', path: ['paths'], message: 'a path resource needs at least one absolute path' });
    if (v.database != null) ctx.addIssue({ code: 'custom', path: ['database'], message: 'only postgres resources name a database' });
    for (const key of ['databaseHost', 'databasePort', 'databaseUser'] as const) {
      if (v[key] != null) ctx.addIssue({ code: 'custom', path: [key], message: 'only postgres resources have a database connection' });
    }
  } else {
    if (v.database == null) ctx.addIssue({ code: 'custom', path: ['database'], message: 'a postgres resource needs the database name' });
    if (v.paths != null || v.excludes != null) ctx.addIssue({ code: 'custom', path: ['paths'], message: 'postgres resources take no paths or excludes' });
  }
});

export const updateResourceSchema = z.object({
  id: z.uuid('must be an ID'),
  name: name.optional(),
  paths: z.array(absolutePath).min(1, 'at least one path').max(100).optional(),
  excludes: z.array(exclude).max(1000).optional(),
  database: database.optional(),
  databaseHost: databaseHost.optional(),
  databasePort: databasePort.optional(),
  databaseUser: databaseUser.optional(),
  labels: labelsSchema.optional(),
});

/** The connection fields of a postgres resource's input: `""` (host, user) or `0` (port) removes one. */
export interface ConnectionInput {
  database?: string;
  databaseHost?: string;
  databasePort?: number;
  databaseUser?: string;
}

/** A postgres spec: `base` (the current one, on update) changed by what the input names. */
export function postgresSpecOf(v: ConnectionInput, base?: PostgresResourceSpec): PostgresResourceSpec {
  const host = v.databaseHost ?? base?.host;
  const port = v.databasePort ?? base?.port;
  const user = v.databaseUser ?? base?.user;
  return {
    database: v.database ?? base!.database,
    ...(host ? { host } : {}),
    ...(port ? { port } : {}),
    ...(user ? { user } : {}),
  };
}

export function specOf(kind: 'path' | 'postgres', v: { paths?: string[]; excludes?: string[] } & ConnectionInput): ResourceSpec {
  return kind === 'path' ? { paths: v.paths ?? [], excludes: v.excludes ?? [] } : postgresSpecOf(v);
}
