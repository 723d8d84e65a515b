import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import type { Principal } from './principal.ts';

const MAX_ENTRIES = 10_000;

interface Entry {
  principal: Principal;
  expiresAt: number;
}

/**
 * Authenticated principals by credential, for ARCA_CP_AUTH_CACHE_MS (default 5 s): a busy
 * integration or dashboard then costs one authentication query per credential per interval
 * instead of one per request (the read path's largest cost; docs/control-plane.md, benchmark).
 *
 * Keys are SHA-256 of the credential (the cache never holds a usable secret). Entries never
 * outlive their credential's own expiry. This replica forgets entries at once when a change here
 * affects them (token revoked, session ended, user suspended, deleted or given another role,
 * role changed); other replicas may accept the old principal for at most the interval — the
 * bound stated in the documentation. 0 turns the cache off.
 */
@Injectable()
export class PrincipalCache {
  private readonly ttlMs: number;
  private readonly entries = new Map<string, Entry>();

  constructor(@Inject(CONFIG) config: ControlPlaneConfig) {
    this.ttlMs = config.authCacheMs;
  }

  static keyOf(credential: string): string {
    return createHash('sha256').update(credential).digest('base64url');
  }

  get(key: string, now: number = Date.now()): Principal | undefined {
    if (this.ttlMs === 0) return undefined;
    const entry = this.entries.get(key);
    if (entry == null) return undefined;
    if (entry.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.principal;
  }

  set(key: string, principal: Principal, credentialExpiresAt: number, now: number = Date.now()): void {
    if (this.ttlMs === 0) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(key, { principal, expiresAt: Math.min(now + this.ttlMs, credentialExpiresAt) });
  }

  /** Forgets every entry of the organization matching all given fields (none: the whole organization). */
  forget(orgId: string, match: { userId?: string; tokenId?: string; sessionId?: string } = {}): void {
    for (const [key, { principal }] of this.entries) {
      if (principal.orgId !== orgId) continue;
      if (match.userId != null && principal.userId !== match.userId) continue;
      if (match.tokenId != null && principal.tokenId !== match.tokenId) continue;
      if (match.sessionId != null && principal.sessionId !== match.sessionId) continue;
      this.entries.delete(key);
    }
  }
}
