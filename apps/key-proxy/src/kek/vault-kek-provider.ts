import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import NodeVault from 'node-vault';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import { checkKekContext, checkMasterKey, providerUnavailable as unavailable, providerConfigError as configError } from './kek-input.ts';
import { rewrapThroughMemory, type KekContext, type KekProvider, type WrappedKey } from './kek-provider.ts';

/**
 * KEK in HashiCorp Vault's transit secrets engine, through the `node-vault` client.
 *
 * The transit key must be created with `derived=true`
 * (`vault write -f transit/keys/arca-kek derived=true`): every encrypt/decrypt/rewrap then carries
 * `context` = base64 of the UTF-8 string `<org>/<store>`, and Vault derives a per-context key from
 * it. An envelope therefore only decrypts for the org AND store it was made for — the store ID is
 * fixed-length hex at the end, so `<org>/<store>` cannot be forged by choosing an org containing
 * '/'. Plaintext sent to Vault is base64 of the MK, as transit requires.
 *
 * Envelope fields: `kek` = transit key name, `ct` = Vault's `vault:vN:…` ciphertext.
 * Rotation: `vault write -f transit/keys/<name>/rotate`, then rewrap moves envelopes to the newest
 * version without the MK leaving Vault. Moving to a *different* key name: set `keyName` to the new
 * key and list the old one in `previousKeyNames`; rewrap then decrypts with the old key and
 * encrypts with the new one (the MK passes through the proxy, which holds it anyway).
 *
 * node-vault (0.12, axios-based) works on Node 24; used only through its generic read/write, since
 * its transit helpers hard-code the `transit` mount. Three of its defaults are overridden because
 * they would weaken this provider: its debug logger prints request bodies (the plaintext MK) when
 * DEBUG=node-vault is set, so a no-op logger is passed; VAULT_SKIP_VERIFY in the environment would
 * turn off TLS verification, so this provider always supplies its own verifying HTTPS agent;
 * VAULT_PREFIX / VAULT_NAMESPACE would silently change request paths, so both are set explicitly.
 * Errors from it carry the request config (token header, plaintext body); they are never attached
 * as `cause` — only Vault's own error text and the network error code are kept.
 */
export interface VaultKekProviderOptions {
  /** Vault address, e.g. https://vault.internal:8200 */
  address: string;
  /**
   * Vault token whose policy grants `update` on <mount>/encrypt|decrypt|rewrap/<key> and `read` on
   * <mount>/keys/<key> — but not `create` on encrypt: Vault's encrypt creates a missing key
   * ("upsert"), and a typo or a deleted key must fail rather than silently start a new KEK.
   */
  token: string;
  /** transit mount path; default `transit` */
  mount?: string;
  /** transit key used for new envelopes and rewraps (created with derived=true) */
  keyName: string;
  /** older transit keys whose envelopes this proxy still unwraps (migration between keys) */
  previousKeyNames?: readonly string[];
  /** Vault Enterprise namespace (X-Vault-Namespace header) */
  namespace?: string;
  /** per-request timeout in milliseconds; default 10 000 */
  requestTimeoutMs?: number;
  /** PEM CA certificate(s) to trust for an https address, in addition to the system store */
  caCert?: string | Buffer;
}

type VaultClient = ReturnType<typeof NodeVault>;

interface VaultData {
  data?: Record<string, unknown>;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MOUNT = 'transit';
// Conservative: these end up in URL paths, and key names come back from envelopes.
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const MOUNT = /^[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;
const VAULT_CIPHERTEXT = /^vault:v\d+:[A-Za-z0-9+/]+={0,2}$/;
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ECONNABORTED', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH',
  'ENETUNREACH', 'ERR_NETWORK', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'ERR_CANCELED', 'ECONNCLOSED',
]);

/** `context` sent to Vault: base64 of UTF-8 `<org>/<store>`. */
export function vaultContext(context: KekContext): string {
  return Buffer.from(`${context.org}/${context.store}`, 'utf8').toString('base64');
}

export class VaultKekProvider implements KekProvider {
  readonly name = 'vault' as const;
  readonly #client: VaultClient;
  readonly #origin: string;
  readonly #mount: string;
  readonly #keyName: string;
  readonly #acceptedKeys: ReadonlySet<string>;
  readonly #timeoutMs: number;
  readonly #httpAgent: http.Agent;
  readonly #httpsAgent: https.Agent;
  #closed = false;

  constructor(options: VaultKekProviderOptions) {
    let url: URL;
    try {
      url = new URL(options.address);
    } catch {
      throw configError('Vault address is not a valid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw configError('Vault address must be http(s)://');
    if (url.username || url.password) throw configError('Vault address must not contain credentials');
    if (typeof options.token !== 'string' || options.token.trim() === '') throw configError('Vault token is empty');
    const mount = options.mount ?? DEFAULT_MOUNT;
    if (!MOUNT.test(mount)) throw configError(`Vault transit mount ${JSON.stringify(mount)} is not a valid path`);
    for (const name of [options.keyName, ...(options.previousKeyNames ?? [])]) {
      if (typeof name !== 'string' || !KEY_NAME.test(name)) {
        throw configError(`Vault transit key name ${JSON.stringify(name)} must match ${KEY_NAME.source}`);
      }
    }
    const timeout = options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeout) || timeout <= 0) throw configError('Vault request timeout must be a positive integer (ms)');

    this.#origin = url.origin;
    this.#mount = mount;
    this.#keyName = options.keyName;
    this.#acceptedKeys = new Set([options.keyName, ...(options.previousKeyNames ?? [])]);
    this.#timeoutMs = timeout;
    this.#httpAgent = new http.Agent({ keepAlive: true });
    this.#httpsAgent = new https.Agent({
      keepAlive: true,
      rejectUnauthorized: true,
      // `ca` replaces the default trust store, so keep the bundled roots next to the operator's CA
      ...(options.caCert ? { ca: [...rootCertificates, String(options.caCert)] } : {}),
    });
    const basePath = url.pathname.replace(/\/+$/, '');
    this.#client = NodeVault({
      endpoint: `${url.origin}${basePath}`,
      apiVersion: 'v1',
      token: options.token,
      ...(options.namespace ? { namespace: options.namespace } : {}),
      debug: () => undefined,
      requestOptions: { timeout, httpAgent: this.#httpAgent, httpsAgent: this.#httpsAgent },
    });
    // not in node-vault's typings, but plain properties read on every request (see class comment)
    const settable = this.#client as VaultClient & { pathPrefix: string; namespace: string };
    settable.pathPrefix = '';
    settable.namespace = options.namespace ?? '';
  }

  async wrap(masterKey: Buffer, context: KekContext): Promise<WrappedKey> {
    checkKekContext(context);
    checkMasterKey(masterKey);
    const ct = await this.#encrypt(this.#keyName, masterKey, context);
    return { kek: this.#keyName, ct };
  }

  async unwrap(wrapped: WrappedKey, context: KekContext): Promise<Buffer> {
    checkKekContext(context);
    const keyName = this.#checkWrapped(wrapped);
    const body = await this.#call<VaultData>('decrypt', () =>
      this.#client.write(`${this.#mount}/decrypt/${keyName}`, { ciphertext: wrapped.ct, context: vaultContext(context) }),
    );
    const plaintext = body?.data?.plaintext;
    if (typeof plaintext !== 'string') throw unexpected('decrypt');
    const masterKey = Buffer.from(plaintext, 'base64');
    if (masterKey.length !== 32) {
      masterKey.fill(0);
      throw new KeyProxyError(KeyProxyErrorCode.ProviderError, 'Vault decrypted the envelope to something that is not a 32-byte key');
    }
    return masterKey;
  }

  async rewrap(wrapped: WrappedKey, context: KekContext): Promise<WrappedKey> {
    checkKekContext(context);
    const keyName = this.#checkWrapped(wrapped);
    if (keyName !== this.#keyName) {
      // Vault's rewrap stays within one key; moving to another key goes through the proxy.
      return rewrapThroughMemory(this, wrapped, context);
    }
    const body = await this.#call<VaultData>('rewrap', () =>
      this.#client.write(`${this.#mount}/rewrap/${keyName}`, { ciphertext: wrapped.ct, context: vaultContext(context) }),
    );
    return { kek: keyName, ct: checkCiphertext(body?.data?.ciphertext, 'rewrap') };
  }

  /** Vault unsealed and initialized, and the transit key exists, is derived and can encrypt/decrypt. */
  async ready(): Promise<void> {
    try {
      const health = await this.#call<Record<string, unknown>>('health check', () =>
        // node-vault resolves sys/health for every status code (503 sealed, 501 uninitialized…)
        this.#client.request({ path: '/sys/health', method: 'GET' }),
      );
      if (!health || typeof health !== 'object') throw unavailable(`Vault at ${this.#origin} gave an unexpected health answer`);
      if (health.initialized === false) throw unavailable(`Vault at ${this.#origin} is not initialized`);
      if (health.sealed === true) throw unavailable(`Vault at ${this.#origin} is sealed`);
      const key = await this.#call<VaultData>('key lookup', () =>
        this.#client.read(`${this.#mount}/keys/${this.#keyName}`),
      );
      const data = key?.data;
      if (!data) throw unexpected('key lookup');
      if (data.derived !== true) {
        throw unavailable(
          `Vault transit key ${this.#keyName} is not a derived key; create one with derived=true ` +
            '(context binding to org and store depends on it)',
        );
      }
      if (data.supports_encryption !== true || data.supports_decryption !== true) {
        throw unavailable(`Vault transit key ${this.#keyName} (type ${String(data.type)}) cannot encrypt and decrypt`);
      }
    } catch (err) {
      if (err instanceof KeyProxyError && err.code !== KeyProxyErrorCode.ProviderUnavailable) {
        throw unavailable(err.message);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }

  async #encrypt(keyName: string, masterKey: Buffer, context: KekContext): Promise<string> {
    const body = await this.#call<VaultData>('encrypt', () =>
      this.#client.write(`${this.#mount}/encrypt/${keyName}`, {
        plaintext: masterKey.toString('base64'),
        context: vaultContext(context),
      }),
    );
    return checkCiphertext(body?.data?.ciphertext, 'encrypt');
  }

  #checkWrapped(wrapped: WrappedKey): string {
    if (typeof wrapped.kek !== 'string' || !this.#acceptedKeys.has(wrapped.kek)) {
      throw new KeyProxyError(
        KeyProxyErrorCode.ProviderError,
        `envelope names Vault transit key ${JSON.stringify(String(wrapped.kek).slice(0, 128))}, which this proxy is not ` +
          'configured to use (add it to the previous key names if it is an older key)',
      );
    }
    if (typeof wrapped.ct !== 'string' || !VAULT_CIPHERTEXT.test(wrapped.ct)) {
      throw new KeyProxyError(KeyProxyErrorCode.ProviderError, 'envelope ciphertext is not a Vault transit ciphertext');
    }
    return wrapped.kek;
  }

  async #call<T>(operation: string, request: () => Promise<unknown>): Promise<T> {
    if (this.#closed) throw unavailable('Vault KEK provider is closed');
    try {
      return (await request()) as T;
    } catch (err) {
      throw this.#mapError(operation, err);
    }
  }

  /**
   * 400 (wrong context, tampered or foreign ciphertext), 403 (token lacks the policy or expired),
   * 404 (no such key or mount) and other 4xx: Vault refused — PROVIDER_ERROR. 429 (rate limit,
   * standby), 5xx (sealed, internal), timeouts and network errors: PROVIDER_UNAVAILABLE.
   * Messages keep Vault's own error text (it never echoes tokens or plaintext) and nothing else.
   */
  #mapError(operation: string, err: unknown): KeyProxyError {
    const status = (err as { response?: { statusCode?: unknown } }).response?.statusCode;
    if (typeof status === 'number') {
      const detail = vaultErrorText(err);
      const message = `Vault ${operation} failed with ${status}${detail ? `: ${detail}` : ''}`;
      if (status === 429 || status >= 500) return unavailable(message);
      if (status === 404 && detail === '') {
        return new KeyProxyError(KeyProxyErrorCode.ProviderError, `${message} (no such transit key or mount)`);
      }
      return new KeyProxyError(KeyProxyErrorCode.ProviderError, message);
    }
    const code = (err as { code?: unknown }).code;
    if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') {
      return unavailable(`Vault ${operation} timed out after ${this.#timeoutMs} ms (${this.#origin})`);
    }
    if (typeof code === 'string' && NETWORK_CODES.has(code)) {
      return unavailable(`cannot reach Vault at ${this.#origin} for ${operation} (${code})`);
    }
    // Anything else (TLS failure, malformed response…): the provider is not usable right now.
    const name = err instanceof Error ? err.name : typeof err;
    return unavailable(`Vault ${operation} failed (${typeof code === 'string' ? code : name})`);
  }
}

function vaultErrorText(err: unknown): string {
  const errors = (err as { response?: { body?: { errors?: unknown } } }).response?.body?.errors;
  if (!Array.isArray(errors)) return '';
  return errors
    .filter((e): e is string => typeof e === 'string')
    .join('; ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

function checkCiphertext(value: unknown, operation: string): string {
  if (typeof value !== 'string' || !VAULT_CIPHERTEXT.test(value)) throw unexpected(operation);
  return value;
}

function unexpected(operation: string): KeyProxyError {
  return new KeyProxyError(KeyProxyErrorCode.ProviderError, `Vault ${operation} returned an unexpected response`);
}


