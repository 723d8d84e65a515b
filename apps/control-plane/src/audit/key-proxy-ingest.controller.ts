import { Body, Controller, HttpCode, Inject, Logger, Post, Req, UseFilters } from '@nestjs/common';
import { HttpErrorFilter } from '../ops/http-error.filter.ts';
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { organizations, type Database } from '@arca/db';
import { RequireServiceCredential } from '../access/require-permission.decorator.ts';
import type { ArcaRequest } from '../auth/request-context.ts';
import { DATABASE } from '../database/database.tokens.ts';
import { parseInput } from '../errors/input-validation.ts';
import { AuditLogService } from './audit-log.service.ts';

export const KEY_PROXY_INGEST_PATH = '/v1/audit/key-proxy-events';
const MAX_EVENTS = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const short = z.string().max(200);

/**
 * One issuance event as the key proxy delivers it (docs/key-proxy.md, HttpAuditSink). Only the
 * fields the control plane relies on are checked; the proxy may add optional fields, which are
 * kept in the payload (they are never key material: the proxy guarantees that).
 */
const keyProxyEventSchema = z.looseObject({
  seq: z.number().int().positive(),
  time: z.iso.datetime({ offset: true }),
  org: short.nullable(),
  agent: short.nullable(),
  store: short.nullable(),
  job: short.nullable(),
  operation: z.string().regex(/^[a-z][a-z-]{0,39}$/),
  purpose: z.enum(['read', 'write']).nullable(),
  blobKeys: z.number().int().min(0),
  fileKeys: z.number().int().min(0),
  outcome: z.enum(['success', 'refused']),
  code: short.optional(),
  requestId: short.nullable(),
  agentKeyThumbprint: short.nullable(),
});
const batchSchema = z.object({
  proxy: z.string().regex(/^[A-Za-z0-9._:-]{1,100}$/, 'a proxy ID: letters, digits, ".", "_", ":" and "-"'),
  events: z.array(keyProxyEventSchema).max(MAX_EVENTS),
});
type KeyProxyEvent = z.infer<typeof keyProxyEventSchema>;

export interface IngestResult {
  accepted: number;
  /** already stored (the proxy retried a batch): the receiver deduplicates on (proxy, seq) */
  duplicates: number;
  /** no organization, or one that does not exist here: logged, not stored */
  unattributed: number;
}

/**
 * Receives the key proxy's issuance audit (POST, Bearer service credential) and appends each
 * event to its organization's hash chain as `key-proxy.<operation>`, idempotently.
 */
@Controller()
@UseFilters(HttpErrorFilter)
export class KeyProxyIngestController {
  private readonly db: Database;
  private readonly audit: AuditLogService;
  private readonly logger = new Logger('key-proxy-ingest');

  constructor(@Inject(DATABASE) db: Database, audit: AuditLogService) {
    this.db = db;
    this.audit = audit;
  }

  @Post(KEY_PROXY_INGEST_PATH)
  @HttpCode(200)
  @RequireServiceCredential('key-proxy')
  async ingest(@Body() body: unknown, @Req() request: ArcaRequest): Promise<IngestResult> {
    const batch = parseInput(batchSchema, body);
    const byOrg = new Map<string, KeyProxyEvent[]>();
    const result: IngestResult = { accepted: 0, duplicates: 0, unattributed: 0 };
    for (const event of batch.events) {
      if (event.org == null || !UUID.test(event.org)) {
        result.unattributed++;
        continue;
      }
      const list = byOrg.get(event.org) ?? [];
      list.push(event);
      byOrg.set(event.org, list);
    }
    for (const [orgId, events] of byOrg) {
      await this.db.withTenant(orgId, async (tx) => {
        const [org] = await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, orgId));
        if (org == null) {
          result.unattributed += events.length;
          return;
        }
        for (const event of events) {
          const { org: _org, seq, time, ...rest } = event;
          const stored = await this.audit.append(tx, orgId, {
            actor: `key-proxy:${batch.proxy}`,
            action: `key-proxy.${event.operation}`,
            target: event.store == null ? '' : `store:${event.store}`,
            payload: { ...rest, proxySeq: seq },
            requestId: event.requestId,
            source: `key-proxy:${batch.proxy}:${seq}`,
            time: new Date(time),
          });
          if (stored == null) result.duplicates++;
          else result.accepted++;
        }
      });
    }
    if (result.unattributed > 0) this.logger.warn({ msg: 'key proxy events without a known organization were not stored', proxy: batch.proxy, count: result.unattributed, requestId: request.id });
    return result;
  }
}
