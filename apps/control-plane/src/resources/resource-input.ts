import { z } from 'zod';
import { labelsSchema } from '../policies/label-selector.ts';

/** What a resource protects, as stored in resources.spec. */
export type ResourceSpec = { paths: string[]; excludes: string[] } | { database: string };
export const RESOURCE_KINDS = ['path', 'postgres'] as const;

const absolutePath = z.string().min(1).max(4096).refine((p) => p.startsWith('/') && !p.includes('\0'), 'must be an absolute path');
const exclude = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'no NUL characters');
const database = z.string().min(1).max(63).regex(/^[A-Za-z0-9_][A-Za-z0-9_$-]*$/, 'a PostgreSQL database name: letters, digits, "_", "$" and "-"');
const name = z.string().trim().min(1).max(200);

export const createResourceSchema = z.object({
  agentId: z.uuid('must be an agent ID'),
  name,
  kind: z.enum(RESOURCE_KINDS, 'must be "path" or "postgres"'),
  paths: z.array(absolutePath).max(100).optional(),
  excludes: z.array(exclude).max(1000).optional(),
  database: database.optional(),
  labels: labelsSchema.default({}),
}).superRefine((v, ctx) => {
  if (v.kind === 'path') {
    if (v.paths == null || v.paths.length === 0) ctx.addIssue({ code: 'custom', path: ['paths'], message: 'a path resource needs at least one absolute path' });
    if (v.database != null) ctx.addIssue({ code: 'custom', path: ['database'], message: 'only postgres resources name a database' });
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
  labels: labelsSchema.optional(),
});

export function specOf(kind: 'path' | 'postgres', v: { paths?: string[]; excludes?: string[]; database?: string }): ResourceSpec {
  return kind === 'path' ? { paths: v.paths ?? [], excludes: v.excludes ?? [] } : { database: v.database! };
}
