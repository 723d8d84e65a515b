import { Inject, Injectable, Optional } from '@nestjs/common';
import { ControlPlaneError, ControlPlaneErrorCode } from '../errors/control-plane-error.ts';
import type { StoreCredentials } from './store-input.ts';

/** What sealing needs of the control plane's secret box (src/secrets, AES-256-GCM). */
export interface CredentialsBox {
  seal(plaintext: Buffer, aad: Buffer): Buffer;
}

/** Provided by app.module with the secret box (useExisting). */
export const CREDENTIALS_BOX = Symbol('arca:credentials-box');

/**
 * Seals a store's backend credentials with the control plane's secrets key (docs/fleet.md §5):
 * AAD = org ID ‖ store row ID (16 + 16 bytes), so a sealed value copied onto another store or
 * tenant does not open. The plaintext exists only here and in the lease that hands it to an agent.
 */
@Injectable()
export class StoreCredentialsSealer {
  private readonly box: CredentialsBox | null;

  constructor(@Optional() @Inject(CREDENTIALS_BOX) box?: CredentialsBox) {
    this.box = box ?? null;
  }

  seal(orgId: string, storeRowId: string, credentials: StoreCredentials): Buffer {
    if (this.box == null) throw new ControlPlaneError(ControlPlaneErrorCode.Disabled, 'store credentials cannot be stored: the secrets key is not configured (ARCA_CP_SECRETS_KEY_FILE)');
    return this.box.seal(Buffer.from(JSON.stringify(credentials), 'utf8'), credentialsAad(orgId, storeRowId));
  }
}

export function credentialsAad(orgId: string, storeRowId: string): Buffer {
  return Buffer.concat([Buffer.from(orgId.replaceAll('-', ''), 'hex'), Buffer.from(storeRowId.replaceAll('-', ''), 'hex')]);
}
