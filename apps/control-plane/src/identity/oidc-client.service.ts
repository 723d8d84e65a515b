import { Inject, Injectable, Logger } from '@nestjs/common';
import * as oidc from 'openid-client';
import type { ControlPlaneConfig, OidcConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';

/** What the provider asserted about the person, after every check passed. */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  /** the provider's `email_verified` claim; anything but `true` counts as unverified */
  emailVerified: boolean;
  name: string | null;
}

/** The secrets of one sign-in attempt, kept by the browser in the login cookie. */
export interface LoginChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
}

export type OidcFailureReason = 'provider-denied' | 'state-mismatch' | 'code-rejected' | 'id-token-invalid' | 'nonce-mismatch' | 'provider-error';
export type OidcOutcome = { ok: true; identity: OidcIdentity } | { ok: false; reason: OidcFailureReason; detail: string };

const DISCOVERY_TIMEOUT_SECONDS = 10;

/**
 * The relying party, on openid-client v6: authorization code flow with PKCE (S256), state and
 * nonce, confidential client (client_secret_basic). openid-client validates the authorization
 * response (state, RFC 9207 `iss`), redeems the code with the verifier, and checks the ID token's
 * signature (provider's JWKS), issuer, audience, expiry and nonce.
 *
 * Discovery happens on first use and is cached; a failed discovery is retried on the next
 * sign-in, so the control plane starts (and serves API tokens) while the provider is down.
 */
@Injectable()
export class OidcClientService {
  private readonly config: OidcConfig | null;
  private readonly logger = new Logger('oidc');
  private discovered: Promise<oidc.Configuration> | null = null;

  constructor(@Inject(CONFIG) config: ControlPlaneConfig) {
    this.config = config.oidc;
  }

  get enabled(): boolean {
    return this.config != null;
  }

  /** The provider's authorization URL for a new attempt, and the attempt's secrets. */
  async beginLogin(): Promise<{ url: string; checks: LoginChecks }> {
    const config = this.require();
    const client = await this.client();
    const checks: LoginChecks = { state: oidc.randomState(), nonce: oidc.randomNonce(), codeVerifier: oidc.randomPKCECodeVerifier() };
    const url = oidc.buildAuthorizationUrl(client, {
      redirect_uri: config.redirectUrl,
      scope: config.scopes,
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(checks.codeVerifier),
      code_challenge_method: 'S256',
      state: checks.state,
      nonce: checks.nonce,
    });
    return { url: url.href, checks };
  }

  /** Completes the attempt from the callback's query string; never throws for a refused sign-in. */
  async completeLogin(callbackQuery: string, checks: LoginChecks): Promise<OidcOutcome> {
    const config = this.require();
    const client = await this.client();
    // the configured redirect URL, not the Host header, is the base: a proxy cannot change it
    const current = new URL(config.redirectUrl);
    current.search = callbackQuery;
    try {
      const tokens = await oidc.authorizationCodeGrant(client, current, {
        pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state, expectedNonce: checks.nonce, idTokenExpected: true,
      });
      const claims = tokens.claims();
      if (claims == null) return { ok: false, reason: 'id-token-invalid', detail: 'no ID token' };
      // Providers that follow the spec strictly put profile claims only in the UserInfo response
      // for the code flow; openid-client checks that its `sub` is the ID token's.
      const profile: Record<string, unknown> = typeof claims.email === 'string' || client.serverMetadata().userinfo_endpoint == null
        ? claims
        : await oidc.fetchUserInfo(client, tokens.access_token, claims.sub);
      return {
        ok: true,
        identity: {
          issuer: claims.iss,
          subject: claims.sub,
          email: typeof profile.email === 'string' ? profile.email : null,
          emailVerified: profile.email_verified === true,
          name: typeof profile.name === 'string' ? profile.name : null,
        },
      };
    } catch (err) {
      return { ok: false, ...classify(err) };
    }
  }

  private require(): OidcConfig {
    if (this.config == null) throw new ControlPlaneError(ControlPlaneErrorCode.Disabled, 'OIDC sign-in is not configured (ARCA_CP_OIDC_*)');
    return this.config;
  }

  private client(): Promise<oidc.Configuration> {
    const config = this.require();
    this.discovered ??= oidc
      .discovery(new URL(config.issuer), config.clientId, undefined, oidc.ClientSecretBasic(config.clientSecret), {
        timeout: DISCOVERY_TIMEOUT_SECONDS,
        // openid-client trusts an ID token from the token endpoint on the strength of TLS alone
        // (OIDC Core 3.1.3.7 allows it); we also verify its signature against the provider's
        // JWKS, so a proxy or a compromised hop in between cannot forge one. Plain http is
        // allowed only for a loopback provider (checked by the configuration schema).
        execute: [oidc.enableNonRepudiationChecks, ...(config.allowHttpIssuer ? [oidc.allowInsecureRequests] : [])],
      })
      .catch((err: unknown) => {
        this.discovered = null;
        this.logger.error({ msg: 'OIDC discovery failed', issuer: config.issuer, err });
        throw new ControlPlaneError(ControlPlaneErrorCode.Unavailable, 'the identity provider cannot be reached: try again shortly', { cause: err });
      });
    return this.discovered;
  }
}

/** openid-client's errors by code; its messages are generic, the wrapped cause says more. */
function classify(err: unknown): { reason: OidcFailureReason; detail: string } {
  const e = err as { code?: string; error?: string; message?: string; cause?: { message?: string } };
  const text = `${e.message ?? String(err)} ${e.cause?.message ?? ''}`.trim();
  const detail = `${e.code ?? 'error'}: ${e.error ?? ''} ${text}`.trim();
  if (e.code === 'OAUTH_AUTHORIZATION_RESPONSE_ERROR') return { reason: 'provider-denied', detail };
  if (e.code === 'OAUTH_RESPONSE_BODY_ERROR' && e.error === 'invalid_grant') return { reason: 'code-rejected', detail };
  if (/"state"/.test(text)) return { reason: 'state-mismatch', detail };
  if (/"nonce"/.test(text)) return { reason: 'nonce-mismatch', detail };
  if (/JWS|JWT|signature|ID Token|"sub"/i.test(`${e.code ?? ''} ${text}`)) return { reason: 'id-token-invalid', detail };
  return { reason: 'provider-error', detail };
}
