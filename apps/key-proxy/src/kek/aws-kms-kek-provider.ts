import {
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  KMSClient,
  ReEncryptCommand,
  type KMSClientConfig,
} from '@aws-sdk/client-kms';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import { checkKekContext, checkMasterKey, decodeBase64Ciphertext, providerRefusal as refusal, providerUnavailable as unavailable, providerConfigError as configError } from './kek-input.ts';
import type { KekContext, KekProvider, WrappedKey } from './kek-provider.ts';

/**
 * KEK in AWS KMS (a symmetric SYMMETRIC_DEFAULT / ENCRYPT_DECRYPT key), through
 * `@aws-sdk/client-kms`.
 *
 * Every call carries EncryptionContext `{ "arca:org": org, "arca:store": store }`; KMS binds it to
 * the ciphertext (and logs it in CloudTrail), so an envelope only decrypts for its own org and
 * store. Envelope fields: `kek` = the key ARN KMS reports for the ciphertext (not an alias, which
 * may later point elsewhere), `ct` = base64 of the CiphertextBlob. Decrypt passes that ARN as
 * KeyId, so KMS refuses ciphertexts from any other key (IncorrectKeyException). Which keys the
 * proxy may use at all is decided by its IAM/key policy: scope it to the configured key(s).
 *
 * Rotation: with KMS automatic (or on-demand) rotation the key ARN stays the same and rewrap
 * (ReEncrypt to the same key) moves an envelope to the newest key material. To move to another
 * key, set `keyId` to it: wrap and rewrap use it as the destination, and old envelopes still name
 * their source key. The MK never leaves KMS during ReEncrypt.
 */
export interface AwsKmsKekProviderOptions {
  /** AWS region of the key, e.g. eu-west-1 */
  region: string;
  /** key used for new envelopes and as ReEncrypt destination: key ID, key ARN, alias name or alias ARN */
  keyId: string;
  /** endpoint override: a VPC endpoint, FIPS endpoint, or a test fake; default the regional endpoint */
  endpoint?: string;
  /** explicit credentials; default the standard AWS chain (env, profile, SSO, web identity, ECS/EC2 roles) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** total attempts per call, including SDK retries of throttling/5xx/network errors; default 3 */
  maxAttempts?: number;
  /** per-attempt socket timeout in milliseconds; default 10 000 */
  requestTimeoutMs?: number;
}

const ORG_KEY = 'arca:org';
const STORE_KEY = 'arca:store';
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_KEY_ID_LENGTH = 2048;

/** KMS answered and refused: the request or the ciphertext is wrong, or the key may not be used. */
const REFUSALS: Record<string, string> = {
  InvalidCiphertextException: 'the envelope was altered, or belongs to another store or organization',
  IncorrectKeyException: 'the ciphertext was not made with the key the envelope names',
  AccessDeniedException: "the proxy's IAM identity may not use this key",
  NotFoundException: 'no such key',
  DisabledException: 'the key is disabled',
  KMSInvalidStateException: 'the key is not in a usable state (pending deletion or import?)',
  InvalidKeyUsageException: 'the key cannot be used for encryption',
  InvalidGrantTokenException: 'invalid grant token',
  ValidationException: 'invalid request',
  InvalidArnException: 'invalid key ARN',
  UnrecognizedClientException: 'the AWS credentials are not valid',
  InvalidSignatureException: 'the request signature was rejected (wrong secret key or clock skew)',
  IncompleteSignatureException: 'the request signature was rejected',
  ExpiredTokenException: 'the AWS session credentials have expired',
  MissingAuthenticationTokenException: 'the request was not signed',
};

/** KMS (or the path to it) cannot serve the request right now; the SDK has already retried. */
const OUTAGES = new Set([
  'KMSInternalException', 'DependencyTimeoutException', 'KeyUnavailableException', 'ThrottlingException',
  'LimitExceededException', 'RequestLimitExceeded', 'ServiceUnavailable', 'ServiceUnavailableException',
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'CredentialsProviderError',
]);

export function kmsEncryptionContext(context: KekContext): Record<string, string> {
  return { [ORG_KEY]: context.org, [STORE_KEY]: context.store };
}

export class AwsKmsKekProvider implements KekProvider {
  readonly name = 'aws-kms' as const;
  readonly #client: KMSClient;
  readonly #keyId: string;
  readonly #timeoutMs: number;
  #closed = false;

  constructor(options: AwsKmsKekProviderOptions) {
    if (typeof options.region !== 'string' || !/^[a-z0-9-]+$/.test(options.region)) {
      throw configError('AWS KMS region is missing or invalid');
    }
    checkKeyId(options.keyId, configError);
    const timeout = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeout) || timeout <= 0) throw configError('AWS KMS request timeout must be a positive integer (ms)');
    const maxAttempts = options.maxAttempts ?? 3;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw configError('AWS KMS max attempts must be a positive integer');
    if (options.endpoint !== undefined) {
      try {
        new URL(options.endpoint);
      } catch {
        throw configError('AWS KMS endpoint is not a valid URL');
      }
    }
    const config: KMSClientConfig = {
      region: options.region,
      maxAttempts,
      // throwOnRequestTimeout: without it the SDK only logs a warning when requestTimeout passes
      requestHandler: { requestTimeout: timeout, connectionTimeout: timeout, throwOnRequestTimeout: true },
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
    };
    this.#client = new KMSClient(config);
    this.#keyId = options.keyId;
    this.#timeoutMs = timeout;
  }

  async wrap(masterKey: Buffer, context: KekContext): Promise<WrappedKey> {
    checkKekContext(context);
    checkMasterKey(masterKey);
    const out = await this.#send('Encrypt', (client) => client.send(new EncryptCommand({
      KeyId: this.#keyId,
      Plaintext: masterKey,
      EncryptionContext: kmsEncryptionContext(context),
    })));
    return { kek: out.KeyId ?? this.#keyId, ct: blobToString(out.CiphertextBlob, 'Encrypt') };
  }

  async unwrap(wrapped: WrappedKey, context: KekContext): Promise<Buffer> {
    checkKekContext(context);
    const keyId = checkKeyId(wrapped.kek, refusal);
    const blob = decodeBase64Ciphertext(wrapped.ct, 'AWS KMS');
    const out = await this.#send('Decrypt', (client) => client.send(new DecryptCommand({
      KeyId: keyId,
      CiphertextBlob: blob,
      EncryptionContext: kmsEncryptionContext(context),
    })));
    const plaintext = out.Plaintext;
    if (!plaintext) throw unexpected('Decrypt');
    const masterKey = Buffer.from(plaintext);
    plaintext.fill(0);
    if (masterKey.length !== 32) {
      masterKey.fill(0);
      throw refusal('AWS KMS decrypted the envelope to something that is not a 32-byte key');
    }
    return masterKey;
  }

  async rewrap(wrapped: WrappedKey, context: KekContext): Promise<WrappedKey> {
    checkKekContext(context);
    const sourceKeyId = checkKeyId(wrapped.kek, refusal);
    const encryptionContext = kmsEncryptionContext(context);
    const blob = decodeBase64Ciphertext(wrapped.ct, 'AWS KMS');
    const out = await this.#send('ReEncrypt', (client) => client.send(new ReEncryptCommand({
      CiphertextBlob: blob,
      SourceKeyId: sourceKeyId,
      SourceEncryptionContext: encryptionContext,
      DestinationKeyId: this.#keyId,
      DestinationEncryptionContext: encryptionContext,
    })));
    return { kek: out.KeyId ?? this.#keyId, ct: blobToString(out.CiphertextBlob, 'ReEncrypt') };
  }

  /** DescribeKey: the key exists, is enabled, and is a symmetric encryption key. */
  async ready(): Promise<void> {
    try {
      const out = await this.#send('DescribeKey', (client) => client.send(new DescribeKeyCommand({ KeyId: this.#keyId })));
      const meta = out.KeyMetadata;
      if (!meta) throw unexpected('DescribeKey');
      const id = meta.Arn ?? this.#keyId;
      if (meta.Enabled !== true || (meta.KeyState !== undefined && meta.KeyState !== 'Enabled')) {
        throw unavailable(`AWS KMS key ${id} is not enabled (state ${String(meta.KeyState)})`);
      }
      const spec = meta.KeySpec ?? meta.CustomerMasterKeySpec;
      if (spec !== 'SYMMETRIC_DEFAULT' || meta.KeyUsage !== 'ENCRYPT_DECRYPT') {
        throw unavailable(`AWS KMS key ${id} must be SYMMETRIC_DEFAULT with usage ENCRYPT_DECRYPT (is ${String(spec)}, ${String(meta.KeyUsage)})`);
      }
    } catch (err) {
      if (err instanceof KeyProxyError && err.code !== KeyProxyErrorCode.ProviderUnavailable) throw unavailable(err.message);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
  }

  async #send<Output>(operation: string, call: (client: KMSClient) => Promise<Output>): Promise<Output> {
    if (this.#closed) throw unavailable('AWS KMS KEK provider is closed');
    try {
      return await call(this.#client);
    } catch (err) {
      throw this.#mapError(operation, err);
    }
  }

  /**
   * Modeled 4xx refusals -> PROVIDER_ERROR. Throttling and 5xx (after the SDK's retries), timeouts,
   * network errors and missing credentials -> PROVIDER_UNAVAILABLE. Never attaches the SDK error
   * as cause: its $response/$metadata are harmless, but nothing from the request should travel.
   */
  #mapError(operation: string, err: unknown): KeyProxyError {
    if (err instanceof KeyProxyError) return err;
    const e = (err ?? {}) as { name?: unknown; message?: unknown; code?: unknown; $fault?: unknown; $metadata?: { httpStatusCode?: unknown } };
    const name = typeof e.name === 'string' ? e.name : 'Error';
    const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
    const message = typeof e.message === 'string' ? e.message.replace(/\s+/g, ' ').trim().slice(0, 300) : '';
    const detail = message === 'UnknownError' ? '' : message; // the SDK's text for an error without a message
    const code = typeof e.code === 'string' ? e.code : undefined;
    // the SDK renames ECONNRESET/EPIPE to TimeoutError; the code tells what happened
    if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNREFUSED') {
      return unavailable(`cannot reach AWS KMS for ${operation} (${code})`);
    }
    if (name === 'TimeoutError' || code === 'ETIMEDOUT' || code === 'ECONNABORTED') {
      return unavailable(`AWS KMS ${operation} timed out (${this.#timeoutMs} ms per attempt)`);
    }
    if (name === 'CredentialsProviderError') {
      return unavailable(`AWS KMS ${operation}: no AWS credentials could be loaded (${detail || name})`);
    }
    if (OUTAGES.has(name) || e.$fault === 'server' || (status !== undefined && status >= 500)) {
      return unavailable(`AWS KMS ${operation} failed: ${name}${status ? ` (HTTP ${status})` : ''}${detail ? `: ${detail}` : ''}`);
    }
    if (status !== undefined && status >= 400) {
      const hint = REFUSALS[name];
      return refusal(`AWS KMS refused ${operation}: ${name}${hint ? ` (${hint})` : ''}${detail ? `: ${detail}` : ''}`);
    }
    // no HTTP status: the request never got an answer (connection refused/reset, DNS, TLS)
    return unavailable(`cannot reach AWS KMS for ${operation} (${code ?? name})`);
  }
}

function checkKeyId(keyId: unknown, fail: (message: string) => KeyProxyError): string {
  if (typeof keyId !== 'string' || keyId.length === 0 || keyId.length > MAX_KEY_ID_LENGTH || /\s/.test(keyId)) {
    throw fail('AWS KMS key id must be a key ID, key ARN, alias name or alias ARN');
  }
  return keyId;
}

function blobToString(blob: Uint8Array | undefined, operation: string): string {
  if (!blob || blob.length === 0) throw unexpected(operation);
  return Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength).toString('base64');
}

function unexpected(operation: string): KeyProxyError {
  return refusal(`AWS KMS ${operation} returned an unexpected response`);
}



