import { readFile } from 'node:fs/promises';
import { KeyProxyError, KeyProxyErrorCode } from '../errors/key-proxy-error.ts';
import type { KekProvider } from '../kek/kek-provider.ts';
import type { KekProviderSettings } from '../kek/open-kek-provider.ts';
import { readSecretFile } from '../kek/secret-file.ts';
import type { ProviderConfig } from './key-proxy-config.ts';

/**
 * Maps the provider part of the configuration to the providers' settings, reading the secrets it
 * names from their files (the Vault token; the PKCS#11 PIN file is read by the provider factory,
 * the AWS credentials come from the standard AWS chain), then opens the provider.
 */
export async function kekProviderSettings(config: ProviderConfig): Promise<KekProviderSettings> {
  switch (config.provider) {
    case 'local':
      return { provider: 'local', kekFile: config.kekFile, previousKekFiles: config.previousKekFiles };
    case 'vault': {
      const token = await readSecretFile(config.tokenFile, 'Vault token file');
      let text: string;
      try {
        text = token.toString('utf8').trim();
      } finally {
        token.fill(0);
      }
      if (text === '') throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `the Vault token file ${config.tokenFile} is empty`);
      let caCert: string | undefined;
      if (config.caFile !== undefined) {
        try {
          caCert = await readFile(config.caFile, 'utf8');
        } catch (err) {
          throw new KeyProxyError(KeyProxyErrorCode.ConfigInvalid, `cannot read ARCA_KP_VAULT_CA_FILE ${config.caFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        }
      }
      return {
        provider: 'vault', address: config.addr, token: text, mount: config.mount, keyName: config.key, previousKeyNames: config.previousKeys,
        ...(config.namespace !== undefined ? { namespace: config.namespace } : {}),
        ...(caCert !== undefined ? { caCert } : {}),
      };
    }
    case 'aws-kms':
      return { provider: 'aws-kms', keyId: config.keyId, region: config.region, ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}) };
    case 'pkcs11':
      return { provider: 'pkcs11', modulePath: config.module, tokenLabel: config.tokenLabel, pinFile: config.pinFile, keyLabel: config.keyLabel };
  }
}

/** Loaded on demand: the provider SDKs (AWS, Vault, PKCS#11) are not needed by the CLI's other commands. */
export async function openConfiguredProvider(config: ProviderConfig): Promise<KekProvider> {
  const { openKekProvider } = await import('../kek/open-kek-provider.ts');
  return openKekProvider(await kekProviderSettings(config));
}
