import { Controller, Get, Header, UseFilters } from '@nestjs/common';
import { JWKS_PATH } from '@arca/contracts';
import { PublicRoute } from '../access/require-permission.decorator.ts';
import { HttpErrorFilter } from '../ops/http-error.filter.ts';
import { JobTokenIssuer } from './job-token-issuer.service.ts';

/**
 * The public keys that verify job tokens (docs/fleet.md §3): what the key proxy's
 * ARCA_KP_JWKS_URL points at. Public by nature, no authentication; cacheable for a few minutes
 * (the proxy refetches on an unknown kid anyway).
 */
@Controller()
@UseFilters(HttpErrorFilter)
export class JwksController {
  private readonly issuer: JobTokenIssuer;

  constructor(issuer: JobTokenIssuer) {
    this.issuer = issuer;
  }

  @Get(JWKS_PATH)
  @PublicRoute()
  @Header('cache-control', 'public, max-age=300')
  @Header('content-type', 'application/jwk-set+json')
  jwks(): { keys: Array<Record<string, string>> } {
    return this.issuer.jwks();
  }
}
