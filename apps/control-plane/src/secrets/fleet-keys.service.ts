import { Inject, Injectable } from '@nestjs/common';
import { agentIdentityFromPem, type AgentIdentity } from '@arca/crypto';
import type { ControlPlaneConfig } from '../config/control-plane-config.ts';
import { CONFIG } from '../database/database.tokens.ts';
import { newJobSigningKeyFile, newSecretsKeyFile, readKeyFile } from './key-files.ts';
import { SecretBox } from './secret-box.ts';

/**
 * The control plane's fleet keys, loaded once at first use: the secret box for store credentials
 * and the Ed25519 key that signs job tokens (its kid is the public key's JWK thumbprint). Loaded
 * lazily so a control plane without fleet keys (Postgres, variables unset) still serves everything
 * else, and refuses only the calls that need a key, with CONFIG_INVALID naming the variable.
 */
@Injectable()
export class FleetKeysService {
  private readonly config: ControlPlaneConfig;
  private box: SecretBox | null = null;
  private signer: AgentIdentity | null = null;

  constructor(@Inject(CONFIG) config: ControlPlaneConfig) {
    this.config = config;
  }

  secretBox(): SecretBox {
    this.box ??= new SecretBox(readKeyFile({
      variable: 'ARCA_CP_SECRETS_KEY_FILE', path: this.config.fleet.secretsKeyFile, generate: this.config.fleet.generateMissingKeys, create: newSecretsKeyFile,
    }));
    return this.box;
  }

  /** The signing key pair (same shape as an agent identity: Ed25519 key, public JWK, thumbprint). */
  signingKey(): AgentIdentity {
    this.signer ??= agentIdentityFromPem(readKeyFile({
      variable: 'ARCA_CP_JOB_SIGNING_KEY_FILE', path: this.config.fleet.jobSigningKeyFile, generate: this.config.fleet.generateMissingKeys, create: newJobSigningKeyFile,
    }));
    return this.signer;
  }

  /** What the CREDENTIALS_BOX of the stores module needs (seal with a caller-given AAD). */
  seal(plaintext: Buffer, aad: Buffer): Buffer {
    return this.secretBox().seal(plaintext, aad);
  }

  open(sealed: Buffer, aad: Buffer): Buffer {
    return this.secretBox().open(sealed, aad);
  }
}
