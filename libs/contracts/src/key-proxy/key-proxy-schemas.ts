import { z } from 'zod';

/**
 * Wire schemas of the key proxy's HTTP API (docs/key-proxy.md §3), shared by the proxy (which
 * validates requests) and the agent (which validates responses). Unknown fields are ignored, so
 * either side may add optional fields without breaking the other.
 */

/** Request bodies are at most this many bytes (413 TOO_LARGE above). */
export const KEY_PROXY_MAX_BODY_BYTES = 1024 * 1024;
/** blobIds + files in one `keys` request. */
export const KEY_PROXY_MAX_KEYS_PER_REQUEST = 10_000;
/** Every envelope starts with this. */
export const ENVELOPE_PREFIX = 'arca-env1.';
/** An envelope string is at most this long (a few hundred bytes in practice). */
export const ENVELOPE_MAX_LENGTH = 8192;

export const KEY_PURPOSES = ['read', 'write'] as const;
export type KeyPurposeWire = (typeof KEY_PURPOSES)[number];

const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;

export const storeIdSchema = z.string().regex(HEX64, 'must be a store ID: 64 lowercase hex characters');

export const envelopeStringSchema = z
  .string()
  .max(ENVELOPE_MAX_LENGTH, `must be at most ${ENVELOPE_MAX_LENGTH} characters`)
  .refine((s) => s.startsWith(ENVELOPE_PREFIX) && B64URL.test(s.slice(ENVELOPE_PREFIX.length)), {
    message: `must be an envelope string ("${ENVELOPE_PREFIX}" followed by base64url)`,
  });

/** base64url without padding of a 32-byte key */
const keyB64urlSchema = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a 32-byte key in base64url');

export const fileKeyRefSchema = z.object({
  /** sealed-file kind (docs/store-format.md §8) */
  kind: z.number().int().min(0).max(255),
  /** 16-byte key ID, 32 lowercase hex characters */
  keyId: z.string().regex(HEX32, 'must be a file key ID: 32 lowercase hex characters'),
});
export type FileKeyRefWire = z.infer<typeof fileKeyRefSchema>;

// --- POST /v1/stores/{storeId}/master-key ---
export const masterKeyRequestSchema = z.object({});
export type MasterKeyRequest = z.infer<typeof masterKeyRequestSchema>;
export const masterKeyResponseSchema = z.object({ envelope: envelopeStringSchema });
export type MasterKeyResponse = z.infer<typeof masterKeyResponseSchema>;

// --- POST /v1/stores/{storeId}/agent-keys ---
export const agentKeysRequestSchema = z.object({ envelope: envelopeStringSchema });
export type AgentKeysRequest = z.infer<typeof agentKeysRequestSchema>;
export const agentKeysResponseSchema = z.object({ macKey: keyB64urlSchema, chunkerKey: keyB64urlSchema });
export type AgentKeysResponse = z.infer<typeof agentKeysResponseSchema>;

// --- POST /v1/stores/{storeId}/keys ---
export const keysRequestSchema = z
  .object({
    envelope: envelopeStringSchema,
    purpose: z.enum(KEY_PURPOSES),
    /** blob IDs, 64 lowercase hex characters each; may be omitted (= []) */
    // one check over the array rather than a schema per item: thousands of IDs per request, and
    // zod's per-item machinery was the proxy's largest cost after key derivation (profiled)
    blobIds: z
      .array(z.string())
      .default([])
      .superRefine((ids, ctx) => {
        const bad = ids.findIndex((id) => !HEX64.test(id));
        if (bad >= 0) ctx.addIssue({ code: 'custom', message: 'must be a blob ID: 64 lowercase hex characters', path: [bad] });
      }),
    /** sealed-file key references; may be omitted (= []) */
    files: z.array(fileKeyRefSchema).default([]),
  })
  .refine((r) => r.blobIds.length + r.files.length <= KEY_PROXY_MAX_KEYS_PER_REQUEST, {
    message: `at most ${KEY_PROXY_MAX_KEYS_PER_REQUEST} keys (blobIds + files) per request: split the batch`,
    path: ['blobIds'],
  });
export type KeysRequest = z.input<typeof keysRequestSchema>;
export const keysResponseSchema = z.object({ blobKeys: z.array(keyB64urlSchema), fileKeys: z.array(keyB64urlSchema) });
export type KeysResponse = z.infer<typeof keysResponseSchema>;

// --- POST /v1/envelopes/rewrap ---
export const rewrapRequestSchema = z.object({ envelope: envelopeStringSchema });
export type RewrapRequest = z.infer<typeof rewrapRequestSchema>;
export const rewrapResponseSchema = z.object({ envelope: envelopeStringSchema });
export type RewrapResponse = z.infer<typeof rewrapResponseSchema>;

// --- GET /healthz, GET /readyz ---
export const healthResponseSchema = z.object({ status: z.literal('ok') });
export const readyResponseSchema = z.object({
  status: z.enum(['ready', 'unavailable']),
  provider: z.string(),
  /** why the proxy is not ready (503 only) */
  reason: z.string().optional(),
});
export type ReadyResponse = z.infer<typeof readyResponseSchema>;

// --- errors ---
export const KEY_PROXY_ERROR_CODES = [
  'INVALID_REQUEST', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'PROOF_INVALID', 'PROOF_REPLAYED', 'OPERATION_NOT_ALLOWED',
  'STORE_MISMATCH', 'GRANT_REQUIRED', 'MASTER_KEY_EXISTS', 'NOT_FOUND', 'TOO_LARGE', 'RATE_LIMITED', 'PROVIDER_ERROR',
  'PROVIDER_UNAVAILABLE', 'INTERNAL',
] as const;
export type KeyProxyErrorCodeWire = (typeof KEY_PROXY_ERROR_CODES)[number];

export const keyProxyErrorResponseSchema = z.object({
  error: z.object({
    /** one of KEY_PROXY_ERROR_CODES; unknown codes from a newer proxy are kept as strings */
    code: z.string(),
    message: z.string(),
    /** INVALID_REQUEST: one entry per invalid field */
    fields: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
});
export type KeyProxyErrorResponse = z.infer<typeof keyProxyErrorResponseSchema>;

/** Paths of the API, relative to the proxy's base URL (which may itself carry a path prefix). */
export const keyProxyPaths = {
  masterKey: (storeId: string) => `/v1/stores/${storeId}/master-key`,
  agentKeys: (storeId: string) => `/v1/stores/${storeId}/agent-keys`,
  keys: (storeId: string) => `/v1/stores/${storeId}/keys`,
  rewrap: () => '/v1/envelopes/rewrap',
  healthz: () => '/healthz',
  readyz: () => '/readyz',
  metrics: () => '/metrics',
} as const;
