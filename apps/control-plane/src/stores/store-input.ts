import { z } from 'zod';
import { labelsSchema } from '../policies/label-selector.ts';

/** Input rules of stores (docs/fleet.md §5): backend URLs carry no credentials, those are sealed apart. */
export const STORE_KINDS = ['fs', 's3'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

const httpUrl = z.string().max(2048).refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), 'must be an http(s) URL');

export const credentialsSchema = z.strictObject({
  accessKeyId: z.string().min(1).max(256),
  secretAccessKey: z.string().min(1).max(1024),
  sessionToken: z.string().min(1).max(4096).optional(),
  region: z.string().min(1).max(64).optional(),
  endpoint: httpUrl.optional(),
});
export type StoreCredentials = z.infer<typeof credentialsSchema>;

/** fs: an absolute path on the agent; s3: s3://bucket[/prefix][?endpoint=...], never with user:password@. */
export function storeUrlProblem(kind: StoreKind, url: string): string | null {
  if (url.length > 2048) return 'at most 2048 characters';
  if (kind === 'fs') return url.startsWith('/') && !url.includes('\0') ? null : 'an fs store\'s URL is an absolute path on the agents, e.g. /srv/backup/arca';
  if (!URL.canParse(url)) return 'an s3 store\'s URL looks like s3://bucket/prefix';
  const parsed = new URL(url);
  if (parsed.protocol !== 's3:' || parsed.hostname === '') return 'an s3 store\'s URL looks like s3://bucket/prefix';
  if (parsed.username !== '' || parsed.password !== '') return 'put the access key in credentials, not in the URL (URLs are shown to every reader of the store)';
  return null;
}

export const createStoreSchema = z.object({
  name: z.string().trim().min(1).max(200),
  kind: z.enum(STORE_KINDS, 'must be "fs" or "s3"'),
  url: z.string().min(1),
  credentials: credentialsSchema.optional(),
  keyProxyUrl: httpUrl.optional(),
  immutable: z.boolean().default(false),
  labels: labelsSchema.default({}),
  initAgentId: z.uuid('must be an agent ID'),
}).superRefine((v, ctx) => {
  const problem = storeUrlProblem(v.kind, v.url);
  if (problem != null) ctx.addIssue({ code: 'custom', path: ['url'], message: problem });
  if (v.kind === 'fs' && v.credentials != null) ctx.addIssue({ code: 'custom', path: ['credentials'], message: 'an fs store takes no credentials' });
});

export const updateStoreSchema = z.object({
  id: z.uuid('must be an ID'),
  labels: labelsSchema.optional(),
  credentials: credentialsSchema.optional(),
  clearCredentials: z.boolean().optional(),
  immutable: z.boolean().optional(),
}).refine((v) => !(v.credentials != null && v.clearCredentials === true), { path: ['clearCredentials'], message: 'give new credentials or clear them, not both' });
