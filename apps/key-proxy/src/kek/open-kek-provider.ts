import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import { AwsKmsKekProvider } from './aws-kms-kek-provider.ts';
import type { KekProvider } from './kek-provider.ts';
import { LocalKekProvider } from './local-kek-provider.ts';
import { Pkcs11KekProvider } from './pkcs11-kek-provider.ts';
import { readSecretFile } from './secret-file.ts';
import { VaultKekProvider } from './vault-kek-provider.ts';

/**
 * Which KEK provider the proxy uses and how to reach it (built by the config module, typically from
 * environment variables). Secrets (Vault token, HSM PIN) are passed as values or, for the PIN, a
 * file path; they are never logged.
 */
export type KekProviderSettings =
  | LocalKekSettings
  | VaultKekSettings
  | AwsKmsKekSettings
  | Pkcs11KekSettings;

/** KEK in a file on the proxy host: development and single-host installs only. */
export interface LocalKekSettings {
  provider: 'local';
  /** current KEK file (64 hex characters, mode 0600, owned by the proxy's user) */
  kekFile: string;
  /** older KEK files still accepted for unwrap while envelopes are rewrapped */
  previousKekFiles?: readonly string[];
}

/** KEK in HashiCorp Vault's transit engine (key created with derived=true). */
export interface VaultKekSettings {
  provider: 'vault';
  /** Vault address, e.g. https://vault.internal:8200 */
  address: string;
  /** Vault token allowed to encrypt/decrypt/rewrap with the key and read it */
  token: string;
  /** transit mount path; default `transit` */
  mount?: string;
  /** transit key for new envelopes and rewraps */
  keyName: string;
  /** older transit keys still accepted for unwrap (migration to another key) */
  previousKeyNames?: readonly string[];
  /** Vault Enterprise namespace */
  namespace?: string;
  /** per-request timeout in milliseconds; default 10 000 */
  requestTimeoutMs?: number;
  /** PEM of an extra CA to trust for the Vault address */
  caCert?: string;
}

/** KEK in AWS KMS (symmetric encryption key). */
export interface AwsKmsKekSettings {
  provider: 'aws-kms';
  /** region of the key */
  region: string;
  /** key ID, key ARN, alias name or alias ARN for new envelopes and rewraps */
  keyId: string;
  /** endpoint override (VPC/FIPS endpoint); default the regional endpoint */
  endpoint?: string;
  /** explicit credentials; default the standard AWS credential chain */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** attempts per call including retries; default 3 */
  maxAttempts?: number;
  /** per-attempt timeout in milliseconds; default 10 000 */
  requestTimeoutMs?: number;
}

/** KEK inside an HSM, through a PKCS#11 module. Exactly one of `pin` and `pinFile`. */
export interface Pkcs11KekSettings {
  provider: 'pkcs11';
  /** PKCS#11 module path, e.g. /usr/lib/softhsm/libsofthsm2.so */
  modulePath: string;
  /** token label */
  tokenLabel: string;
  /** user PIN, e.g. from an environment variable */
  pin?: string;
  /** file holding the user PIN (trailing newline ignored; mode 0600, owned by the proxy's user) */
  pinFile?: string;
  /** label of the AES key for new envelopes and rewraps */
  keyLabel: string;
  /** sessions kept open; default 4 */
  sessionPoolSize?: number;
}

/**
 * Creates the configured provider. Local KEK files and the PIN file are read (and checked) here;
 * remote providers are not contacted — call `ready()` for that. Throws CONFIG_INVALID for unusable
 * settings.
 */
export async function openKekProvider(settings: KekProviderSettings): Promise<KekProvider> {
  switch (settings.provider) {
    case 'local':
      return LocalKekProvider.open({
        kekFile: settings.kekFile,
        ...(settings.previousKekFiles ? { previousKekFiles: settings.previousKekFiles } : {}),
      });
    case 'vault':
      return new VaultKekProvider(settings);
    case 'aws-kms':
      return new AwsKmsKekProvider(settings);
    case 'pkcs11': {
      const { pin, pinFile, ...rest } = settings;
      if ((pin === undefined) === (pinFile === undefined)) {
        throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, 'PKCS#11 settings need exactly one of pin and pinFile');
      }
      return new Pkcs11KekProvider({ ...rest, pin: pin ?? (await readPin(pinFile!)) });
    }
    default: {
      const provider: unknown = (settings as { provider?: unknown }).provider;
      throw new KeyProxyError(
        KeyProxyErrorCode.ConfigInvalid,
        `unknown KEK provider ${JSON.stringify(provider)}; expected local, vault, aws-kms or pkcs11`,
      );
    }
  }
}

async function readPin(pinFile: string): Promise<string> {
  const content = await readSecretFile(pinFile, 'PKCS#11 PIN file');
  try {
    // PKCS#11 takes the PIN as a string; strip the newline editors and `echo` add
    const pin = content.toString('utf8').replace(/\r?\n$/, '');
    if (pin === '') throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `PKCS#11 PIN file ${pinFile} is empty`);
    return pin;
  } finally {
    content.fill(0);
  }
}
