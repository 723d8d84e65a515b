import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../src/secrets/secret-box.ts';
import { newSecretsKeyFile, readKeyFile } from '../../src/secrets/key-files.ts';
import { credentialsAad } from '../../src/stores/store-credentials.ts';

const org = '0f0e0d0c-0b0a-4908-8706-050403020100';
const row = '1f1e1d1c-1b1a-4918-8716-151413121110';
const dir = mkdtempSync(join(tmpdir(), 'arca-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('secret box (AES-256-GCM, AAD = org ID ‖ row ID)', () => {
  const box = new SecretBox(randomBytes(32));

  it('opens what it sealed, only under the same AAD and key', () => {
    const sealed = box.seal(Buffer.from('{"secretAccessKey":"s3cr3t"}'), credentialsAad(org, row));
    expect(sealed.includes(Buffer.from('s3cr3t'))).toBe(false);
    expect(box.open(sealed, credentialsAad(org, row)).toString()).toContain('s3cr3t');
    expect(() => box.open(sealed, credentialsAad(row, org))).toThrow(/did not open/);
    expect(() => new SecretBox(randomBytes(32)).open(sealed, credentialsAad(org, row))).toThrow(/did not open/);
    const tampered = Buffer.from(sealed);
    tampered[20] = tampered[20]! ^ 1;
    expect(() => box.open(tampered, credentialsAad(org, row))).toThrow(/did not open/);
  });

  it('errors never carry the secret', () => {
    const sealed = box.seal(Buffer.from('hunter2'), credentialsAad(org, row));
    try {
      box.open(sealed, credentialsAad(org, org));
    } catch (err) {
      expect(String(err)).not.toContain('hunter2');
    }
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(() => new SecretBox(randomBytes(16))).toThrow(/exactly 32 bytes/);
  });
});

describe('key files', () => {
  it('embedded mode generates a missing key with 0600; a shared database requires it', () => {
    const path = join(dir, 'sub', 'secrets.key');
    const key = readKeyFile({ variable: 'ARCA_CP_SECRETS_KEY_FILE', path, generate: true, create: newSecretsKeyFile });
    expect(key).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readKeyFile({ variable: 'ARCA_CP_SECRETS_KEY_FILE', path, generate: true, create: newSecretsKeyFile }).equals(key)).toBe(true);
    expect(() => readKeyFile({ variable: 'ARCA_CP_SECRETS_KEY_FILE', path: null, generate: false, create: newSecretsKeyFile })).toThrow(/required with DATABASE_URL/);
    expect(() => readKeyFile({ variable: 'ARCA_CP_SECRETS_KEY_FILE', path: join(dir, 'missing'), generate: false, create: newSecretsKeyFile })).toThrow(/ENOENT/);
  });

  it('refuses a key file readable by others', () => {
    const path = join(dir, 'open.key');
    writeFileSync(path, randomBytes(32));
    chmodSync(path, 0o644);
    expect(() => readKeyFile({ variable: 'ARCA_CP_SECRETS_KEY_FILE', path, generate: false, create: newSecretsKeyFile })).toThrow(/chmod 600/);
  });
});
