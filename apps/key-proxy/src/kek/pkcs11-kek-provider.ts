import { randomBytes } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import { checkKekContext, checkMasterKey, decodeBase64Ciphertext, providerRefusal as refusal, providerUnavailable as unavailable, providerConfigError as configError } from './kek-input.ts';
import { rewrapThroughMemory, envelopeAad, type KekContext, type KekProvider, type WrappedKey } from './kek-provider.ts';

/**
 * KEK = an AES-256 key inside an HSM, used through PKCS#11 (`pkcs11js`, N-API). The key is created
 * non-extractable and sensitive (generatePkcs11Kek), and the provider refuses a key that is not.
 *
 * Wrapping: CKM_AES_GCM inside the HSM with a random 96-bit nonce generated here (node:crypto),
 * AAD = envelopeAad(context) (binds org and store), 128-bit tag; `ct` = base64(nonce ||
 * ciphertext || tag) — the same layout as the local provider. `kek` = the key's CKA_LABEL.
 * GCM parameters are passed as the PKCS#11 v2.40/3.0 CK_GCM_PARAMS structure (with ulIvBits),
 * which SoftHSM2 and current HSMs read; tested against SoftHSM2 2.6.
 * Rotation: generate a key under a new label, make it `keyLabel`; unwrap uses the label named by
 * the envelope (old keys stay on the token), rewrap = unwrap + wrap under the current label.
 *
 * Sessions: a small pool (default 4) of read-only sessions, each used by one operation at a time
 * (an operation is Init + one async Encrypt/Decrypt, and PKCS#11 allows one active operation per
 * session). Encrypt/Decrypt run on libuv's thread pool (pkcs11js *Async calls), so a slow network
 * HSM does not block the event loop; the library is initialized with CKF_OS_LOCKING_OK for that.
 * A PKCS#11 library can be initialized once per process, so loaded modules are shared by path
 * between providers and finalized when the last one closes.
 *
 * A wrong PIN is remembered and not retried: HSMs lock the user PIN after a few failures, and
 * retrying on every request would lock it. Restart the proxy with the right PIN. (PKCS#11 login
 * state is per process and token: a second provider on a token this process is already logged in
 * to rides on that login, so its own PIN is not checked. The proxy runs one provider.)
 */
export interface Pkcs11KekProviderOptions {
  /** PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so */
  modulePath: string;
  /** label of the token (CKA_LABEL of the token info) holding the key */
  tokenLabel: string;
  /** user PIN; never logged or put in an error */
  pin: string;
  /** CKA_LABEL of the AES key used for new envelopes and rewraps */
  keyLabel: string;
  /** sessions kept open; default 4 */
  sessionPoolSize?: number;
}

export interface GeneratePkcs11KekOptions {
  modulePath: string;
  tokenLabel: string;
  pin: string;
  /** label for the new key; must not exist on the token yet */
  keyLabel: string;
}

type Pkcs11 = InstanceType<typeof pkcs11js.PKCS11>;
type Handle = Buffer;

interface LoadedModule {
  readonly pkcs11: Pkcs11;
  refs: number;
  /** false when someone else in this process had initialized it: then they finalize it */
  readonly finalize: boolean;
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MK_BYTES = 32;
const DEFAULT_POOL_SIZE = 4;
const MAX_LABEL_LENGTH = 128;

/** decryption failures that mean "this ciphertext does not open here" (SoftHSM2 reports a bad tag as CKR_GENERAL_ERROR) */
const DECRYPT_REFUSALS = new Set([
  'CKR_GENERAL_ERROR', 'CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE', 'CKR_AEAD_DECRYPT_FAILED',
  'CKR_SIGNATURE_INVALID', 'CKR_FUNCTION_FAILED',
]);
/** the token or the session is gone: drop the session (and cached handles), report unavailable */
const SESSION_LOST = new Set([
  'CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED', 'CKR_DEVICE_ERROR', 'CKR_USER_NOT_LOGGED_IN', 'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_SLOT_ID_INVALID',
]);
/** resource trouble on the HSM or host: unavailable (the session is dropped, as after any failure) */
const TRANSIENT = new Set(['CKR_DEVICE_MEMORY', 'CKR_HOST_MEMORY', 'CKR_FUNCTION_FAILED', 'CKR_GENERAL_ERROR']);
const STALE_HANDLE = new Set(['CKR_KEY_HANDLE_INVALID', 'CKR_OBJECT_HANDLE_INVALID']);
const PIN_FAILURES = new Set(['CKR_PIN_INCORRECT', 'CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE']);

const modules = new Map<string, LoadedModule>();
/** errors thrown by login() because the PIN was rejected (not retried) */
const PIN_REJECTIONS = new WeakSet<KeyProxyError>();

export class Pkcs11KekProvider implements KekProvider {
  readonly name = 'pkcs11' as const;
  readonly #options: Readonly<Required<Pkcs11KekProviderOptions>>;
  #module: LoadedModule | undefined;
  #slot: Handle | undefined;
  readonly #idle: Handle[] = [];
  #sessions = 0;
  readonly #waiters: { resolve: (session: Handle) => void; reject: (err: unknown) => void }[] = [];
  readonly #keys = new Map<string, Handle>();
  #loginFailure: KeyProxyError | undefined;
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #closed = false;

  constructor(options: Pkcs11KekProviderOptions) {
    if (typeof options.modulePath !== 'string' || options.modulePath === '') throw configError('PKCS#11 module path is empty');
    if (typeof options.tokenLabel !== 'string' || options.tokenLabel === '' || options.tokenLabel.length > 32) {
      throw configError('PKCS#11 token label must be 1-32 characters');
    }
    if (typeof options.pin !== 'string' || options.pin === '') throw configError('PKCS#11 user PIN is empty');
    checkLabel(options.keyLabel, configError);
    const poolSize = options.sessionPoolSize ?? DEFAULT_POOL_SIZE;
    if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 64) throw configError('PKCS#11 session pool size must be 1-64');
    this.#options = { ...options, sessionPoolSize: poolSize };
  }

  async wrap(masterKey: Buffer, context: KekContext): Promise<WrappedKey> {
    checkKekContext(context);
    checkMasterKey(masterKey);
    const label = this.#options.keyLabel;
    const ct = await this.#withKey(label, async (pkcs11, session, key) => {
      const nonce = randomBytes(NONCE_BYTES);
      pkcs11.C_EncryptInit(session, gcm(nonce, envelopeAad(context)), key);
      const sealed = await pkcs11.C_EncryptAsync(session, masterKey, Buffer.alloc(masterKey.length + TAG_BYTES));
      return Buffer.concat([nonce, sealed]).toString('base64');
    });
    return { kek: label, ct };
  }

  async unwrap(wrapped: WrappedKey, context: KekContext): Promise<Buffer> {
    checkKekContext(context);
    const label = checkLabel(wrapped.kek, refusal);
    const sealed = decodeBase64Ciphertext(wrapped.ct, 'PKCS#11');
    if (sealed.length < NONCE_BYTES + TAG_BYTES + 1) throw refusal('PKCS#11 envelope ciphertext is too short');
    return this.#withKey(label, async (pkcs11, session, key) => {
      const out = Buffer.alloc(sealed.length - NONCE_BYTES);
      pkcs11.C_DecryptInit(session, gcm(sealed.subarray(0, NONCE_BYTES), envelopeAad(context)), key);
      let plain: Buffer;
      try {
        plain = await pkcs11.C_DecryptAsync(session, sealed.subarray(NONCE_BYTES), out);
      } catch (err) {
        out.fill(0);
        if (DECRYPT_REFUSALS.has(ckr(err) ?? '')) {
          throw refusal(
            `envelope does not unwrap under PKCS#11 key "${label}" for this organization and store: ` +
              'it was altered, or it belongs to another store or organization',
          );
        }
        throw err;
      }
      const masterKey = Buffer.from(plain);
      out.fill(0);
      if (masterKey.length !== MK_BYTES) {
        masterKey.fill(0);
        throw refusal('PKCS#11 key decrypted the envelope to something that is not a 32-byte key');
      }
      return masterKey;
    });
  }

  async rewrap(wrapped: WrappedKey, context: KekContext): Promise<WrappedKey> {
    return rewrapThroughMemory(this, wrapped, context);
  }

  /** Loads the module, finds the token, logs in and finds the current key (checking its attributes). */
  async ready(): Promise<void> {
    try {
      this.#keys.delete(this.#options.keyLabel); // look it up afresh: it may have been deleted
      await this.#withKey(this.#options.keyLabel, async () => undefined);
    } catch (err) {
      if (err instanceof KeyProxyError && err.code !== KeyProxyErrorCode.ProviderUnavailable) {
        throw new KeyProxyError(KeyProxyErrorCode.ProviderUnavailable, err.message);
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(unavailable('PKCS#11 KEK provider is closed'));
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
    const module = this.#module;
    if (!module) return;
    for (const session of this.#idle.splice(0)) closeSession(module.pkcs11, session);
    this.#sessions = 0;
    this.#keys.clear();
    this.#module = undefined;
    releaseModule(this.#options.modulePath, module);
  }

  /** Runs `operation` with an exclusive session and the key's handle; retries once on a stale handle. */
  async #withKey<T>(label: string, operation: (pkcs11: Pkcs11, session: Handle, key: Handle) => Promise<T>): Promise<T> {
    if (this.#closed) throw unavailable('PKCS#11 KEK provider is closed');
    this.#inFlight++;
    try {
      for (let attempt = 0; ; attempt++) {
        const session = await this.#acquire();
        const pkcs11 = this.#module!.pkcs11;
        let lost = false;
        try {
          const key = this.#findKey(pkcs11, session, label);
          return await operation(pkcs11, session, key);
        } catch (err) {
          if (err instanceof KeyProxyError) throw err;
          const code = ckr(err);
          if (code && STALE_HANDLE.has(code) && attempt === 0) {
            this.#keys.delete(label);
            continue;
          }
          // Any other failure may leave an operation active or the session dead: never reuse it.
          lost = true;
          if (!code || SESSION_LOST.has(code)) {
            this.#keys.clear();
            this.#slot = undefined;
          }
          throw mapPkcs11Error(err, `PKCS#11 operation with key "${label}"`);
        } finally {
          this.#release(session, lost);
        }
      }
    } finally {
      if (--this.#inFlight === 0) this.#drained?.();
    }
  }

  async #acquire(): Promise<Handle> {
    if (this.#closed) throw unavailable('PKCS#11 KEK provider is closed');
    if (this.#loginFailure) throw this.#loginFailure;
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#sessions < this.#options.sessionPoolSize) {
      this.#sessions++;
      try {
        return this.#openSession();
      } catch (err) {
        this.#sessions--;
        throw err;
      }
    }
    return new Promise<Handle>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #release(session: Handle, lost: boolean): void {
    const module = this.#module;
    if (lost || this.#closed || !module) {
      if (module) closeSession(module.pkcs11, session);
      this.#sessions--;
    } else {
      this.#idle.push(session);
    }
    const waiter = this.#waiters.shift();
    if (waiter) this.#acquire().then(waiter.resolve, waiter.reject);
  }

  #openSession(): Handle {
    if (!this.#module) this.#module = acquireModule(this.#options.modulePath);
    const { pkcs11 } = this.#module;
    this.#slot ??= findSlot(pkcs11, this.#options.tokenLabel);
    let session: Handle;
    try {
      session = pkcs11.C_OpenSession(this.#slot, pkcs11js.CKF_SERIAL_SESSION);
    } catch (err) {
      this.#slot = undefined;
      throw mapPkcs11Error(err, `cannot open a session on PKCS#11 token "${this.#options.tokenLabel}"`);
    }
    try {
      login(pkcs11, session, this.#options.pin, this.#options.tokenLabel);
    } catch (err) {
      closeSession(pkcs11, session);
      if (err instanceof KeyProxyError && PIN_REJECTIONS.has(err)) this.#loginFailure = err;
      throw err;
    }
    return session;
  }

  #findKey(pkcs11: Pkcs11, session: Handle, label: string): Handle {
    const cached = this.#keys.get(label);
    if (cached) return cached;
    const key = findSecretKey(pkcs11, session, label, this.#options.tokenLabel);
    if (!key) throw refusal(`no AES key labelled "${label}" on PKCS#11 token "${this.#options.tokenLabel}"`);
    checkKeyAttributes(pkcs11, session, key, label);
    this.#keys.set(label, key);
    return key;
  }
}

/**
 * Creates a non-extractable, sensitive AES-256 token key labelled `keyLabel`, usable only for
 * encrypt/decrypt. Refuses if a secret key with that label already exists (labels name the KEK in
 * envelopes, so they must be unique). For setup (admin command) and tests.
 */
export async function generatePkcs11Kek(options: GeneratePkcs11KekOptions): Promise<{ keyLabel: string }> {
  checkLabel(options.keyLabel, configError);
  const module = acquireModule(options.modulePath);
  const { pkcs11 } = module;
  try {
    const slot = findSlot(pkcs11, options.tokenLabel);
    let session: Handle;
    try {
      session = pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    } catch (err) {
      throw mapPkcs11Error(err, `cannot open a session on PKCS#11 token "${options.tokenLabel}"`);
    }
    try {
      login(pkcs11, session, options.pin, options.tokenLabel);
      if (findSecretKey(pkcs11, session, options.keyLabel, options.tokenLabel)) {
        throw configError(`a secret key labelled "${options.keyLabel}" already exists on token "${options.tokenLabel}"; choose a new label`);
      }
      try {
        pkcs11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_VALUE_LEN, value: MK_BYTES },
          { type: pkcs11js.CKA_LABEL, value: options.keyLabel },
          { type: pkcs11js.CKA_ID, value: randomBytes(8) },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_MODIFIABLE, value: false },
          { type: pkcs11js.CKA_ENCRYPT, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: true },
          { type: pkcs11js.CKA_WRAP, value: false },
          { type: pkcs11js.CKA_UNWRAP, value: false },
          { type: pkcs11js.CKA_SIGN, value: false },
          { type: pkcs11js.CKA_VERIFY, value: false },
          { type: pkcs11js.CKA_DERIVE, value: false },
        ]);
      } catch (err) {
        throw mapPkcs11Error(err, `cannot generate key "${options.keyLabel}"`);
      }
      return { keyLabel: options.keyLabel };
    } finally {
      closeSession(pkcs11, session);
    }
  } finally {
    releaseModule(options.modulePath, module);
  }
}

function acquireModule(modulePath: string): LoadedModule {
  let module = modules.get(modulePath);
  if (!module) {
    const pkcs11 = new pkcs11js.PKCS11();
    try {
      pkcs11.load(modulePath);
    } catch (err) {
      throw unavailable(`cannot load PKCS#11 module ${modulePath} (${errorLabel(err)})`);
    }
    let finalize = true;
    try {
      pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckr(err) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        finalize = false;
      } else {
        safely(() => pkcs11.close());
        throw unavailable(`cannot initialize PKCS#11 module ${modulePath} (${errorLabel(err)})`);
      }
    }
    module = { pkcs11, refs: 0, finalize };
    modules.set(modulePath, module);
  }
  module.refs++;
  return module;
}

function releaseModule(modulePath: string, module: LoadedModule): void {
  if (--module.refs > 0) return;
  modules.delete(modulePath);
  if (module.finalize) safely(() => module.pkcs11.C_Finalize());
  safely(() => module.pkcs11.close());
}

function findSlot(pkcs11: Pkcs11, tokenLabel: string): Handle {
  let slots: Handle[];
  try {
    slots = pkcs11.C_GetSlotList(true);
  } catch (err) {
    throw mapPkcs11Error(err, 'cannot list PKCS#11 slots');
  }
  const matching = slots.filter((slot) => {
    try {
      return pkcs11.C_GetTokenInfo(slot).label.trimEnd() === tokenLabel;
    } catch {
      return false; // token removed while listing
    }
  });
  if (matching.length === 0) throw unavailable(`no PKCS#11 token labelled "${tokenLabel}" is present`);
  if (matching.length > 1) throw unavailable(`more than one PKCS#11 token is labelled "${tokenLabel}"; token labels must be unique`);
  return matching[0]!;
}

function login(pkcs11: Pkcs11, session: Handle, pin: string, tokenLabel: string): void {
  try {
    pkcs11.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (err) {
    const code = ckr(err);
    // login state is per application and token: another session of this process already did it
    if (code === 'CKR_USER_ALREADY_LOGGED_IN') return;
    if (code && PIN_FAILURES.has(code)) {
      const rejected = unavailable(`PKCS#11 login to token "${tokenLabel}" failed (${code}): check the user PIN; not retrying until restart`);
      PIN_REJECTIONS.add(rejected);
      throw rejected;
    }
    throw mapPkcs11Error(err, `PKCS#11 login to token "${tokenLabel}" failed`);
  }
}

function findSecretKey(pkcs11: Pkcs11, session: Handle, label: string, tokenLabel: string): Handle | undefined {
  let handles: Handle[];
  try {
    pkcs11.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    try {
      handles = pkcs11.C_FindObjects(session, 2);
    } finally {
      pkcs11.C_FindObjectsFinal(session);
    }
  } catch (err) {
    throw mapPkcs11Error(err, `cannot search PKCS#11 token "${tokenLabel}"`);
  }
  if (handles.length > 1) {
    throw refusal(`more than one secret key is labelled "${label}" on PKCS#11 token "${tokenLabel}"; key labels must be unique`);
  }
  return handles[0];
}

/** Refuse keys an attacker or a careless setup could have made exportable or too weak. */
function checkKeyAttributes(pkcs11: Pkcs11, session: Handle, key: Handle, label: string): void {
  let attributes: { type: number; value: Buffer }[];
  try {
    attributes = pkcs11.C_GetAttributeValue(session, key, [
      { type: pkcs11js.CKA_KEY_TYPE },
      { type: pkcs11js.CKA_VALUE_LEN },
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_ENCRYPT },
      { type: pkcs11js.CKA_DECRYPT },
    ]) as { type: number; value: Buffer }[];
  } catch (err) {
    throw mapPkcs11Error(err, `cannot read the attributes of PKCS#11 key "${label}"`);
  }
  const value = (type: number): number => {
    const buf = attributes.find((a) => a.type === type)?.value;
    return buf && buf.length > 0 ? buf.readUIntLE(0, Math.min(buf.length, 6)) : -1;
  };
  const problems: string[] = [];
  if (value(pkcs11js.CKA_KEY_TYPE) !== pkcs11js.CKK_AES) problems.push('not an AES key');
  if (value(pkcs11js.CKA_VALUE_LEN) !== MK_BYTES) problems.push('not 256-bit');
  if (value(pkcs11js.CKA_SENSITIVE) !== 1) problems.push('not sensitive');
  if (value(pkcs11js.CKA_EXTRACTABLE) !== 0) problems.push('extractable');
  if (value(pkcs11js.CKA_ENCRYPT) !== 1 || value(pkcs11js.CKA_DECRYPT) !== 1) problems.push('not allowed to encrypt and decrypt');
  if (problems.length > 0) {
    throw refusal(
      `PKCS#11 key "${label}" is unsuitable as a KEK (${problems.join(', ')}); ` +
        'generate a non-extractable AES-256 key with the key proxy',
    );
  }
}

function gcm(nonce: Buffer, aad: Buffer): pkcs11js.Mechanism {
  const parameter: pkcs11js.AesGCM = {
    type: pkcs11js.CK_PARAMS_AES_GCM_v240,
    iv: nonce,
    ivBits: NONCE_BYTES * 8,
    aad,
    tagBits: TAG_BYTES * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

function closeSession(pkcs11: Pkcs11, session: Handle): void {
  safely(() => pkcs11.C_CloseSession(session));
}

function checkLabel(label: unknown, fail: (message: string) => KeyProxyError): string {
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  if (typeof label !== 'string' || label.length === 0 || label.length > MAX_LABEL_LENGTH || /[\u0000-\u001f\u007f]/.test(label)) {
    throw fail(`PKCS#11 key label must be 1-${MAX_LABEL_LENGTH} printable characters`);
  }
  return label;
}

/** The CKR_* name of a pkcs11js error (its message), if it is one. */
function ckr(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : undefined;
  return message && /^CKR_\w+$/.test(message) ? message : undefined;
}

function errorLabel(err: unknown): string {
  return ckr(err) ?? (err instanceof Error ? err.message.split('\n')[0]!.slice(0, 200) : String(err));
}

function mapPkcs11Error(err: unknown, what: string): KeyProxyError {
  if (err instanceof KeyProxyError) return err;
  const code = ckr(err);
  if (!code || SESSION_LOST.has(code) || TRANSIENT.has(code)) return unavailable(`${what}: ${errorLabel(err)}`);
  return refusal(`${what}: the HSM refused (${code})`);
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // cleanup of a session/module that is already gone
  }
}



