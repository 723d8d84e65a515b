/**
 * A throwaway SoftHSM2 token for PKCS#11 tests (real SoftHSM2, not a fake): its own token
 * directory and SOFTHSM2_CONF in a temp directory, initialized with
 * `softhsm2-util --init-token --free`, removed by `remove()`.
 *
 * SoftHSM2 reads SOFTHSM2_CONF when the library is initialized, so set
 * `process.env.SOFTHSM2_CONF = token.confPath` before the first PKCS#11 call of the test process
 * (vitest runs each test file in its own process, so this stays local to the file).
 * Needs Debian's softhsm2 package (.ci/run installs it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const require = createRequire(import.meta.url);

const CREATE_KEY_SCRIPT = `
const r = JSON.parse(process.env.ARCA_CREATE_KEY);
const p = require(r.pkcs11js);
const m = new p.PKCS11();
m.load(r.modulePath);
m.C_Initialize();
try {
  const slot = m.C_GetSlotList(true).find((s) => m.C_GetTokenInfo(s).label.trimEnd() === r.tokenLabel);
  const session = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
  m.C_Login(session, p.CKU_USER, r.pin);
  m.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
    { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY }, { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
    { type: p.CKA_VALUE_LEN, value: 32 }, { type: p.CKA_LABEL, value: r.keyLabel }, { type: p.CKA_TOKEN, value: true },
    { type: p.CKA_PRIVATE, value: true }, { type: p.CKA_SENSITIVE, value: r.sensitive },
    { type: p.CKA_EXTRACTABLE, value: r.extractable }, { type: p.CKA_ENCRYPT, value: true }, { type: p.CKA_DECRYPT, value: true },
  ]);
  m.C_CloseSession(session);
} finally {
  m.C_Finalize();
}
`;

const MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

export interface SoftHsmToken {
  /** PKCS#11 module path of SoftHSM2 */
  modulePath: string;
  /** SOFTHSM2_CONF for this token's directory */
  confPath: string;
  label: string;
  pin: string;
  soPin: string;
  /** initializes one more token, with the same PINs, in this token directory */
  addToken(label: string): Promise<void>;
  /**
   * Creates an AES-256 key with the given extractable/sensitive attributes, from a separate Node
   * process (so this process's PKCS#11 state is untouched): the kind of key an operator could
   * create by mistake, to check that providers refuse it.
   */
  createAesKey(keyLabel: string, attributes: { extractable: boolean; sensitive: boolean }): Promise<void>;
  /** delete the token directory; safe to call twice */
  remove(): Promise<void>;
}

export function softHsmModulePath(): string {
  const found = [process.env.SOFTHSM2_MODULE, ...MODULE_CANDIDATES].find((p) => p !== undefined && existsSync(p));
  if (!found) {
    throw new Error('SoftHSM2 not found (libsofthsm2.so): install it with `apt-get install softhsm2` (.ci/run does)');
  }
  return found;
}

export async function createSoftHsmToken(options: { label?: string; pin?: string; soPin?: string } = {}): Promise<SoftHsmToken> {
  const modulePath = softHsmModulePath();
  const label = options.label ?? 'arca-test';
  const pin = options.pin ?? '246813';
  const soPin = options.soPin ?? '135792';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'arca-softhsm-'));
  const tokenDir = path.join(dir, 'tokens');
  const confPath = path.join(dir, 'softhsm2.conf');
  try {
    await mkdir(tokenDir, { mode: 0o700 });
    await writeFile(confPath, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    await execFileAsync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin],
      { env: { ...process.env, SOFTHSM2_CONF: confPath } },
    );
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('softhsm2-util not found: install it with `apt-get install softhsm2` (.ci/run does)', { cause: err });
    }
    throw err;
  }
  return {
    modulePath,
    confPath,
    label,
    pin,
    soPin,
    async addToken(tokenLabel) {
      await execFileAsync('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--so-pin', soPin, '--pin', pin], {
        env: { ...process.env, SOFTHSM2_CONF: confPath },
      });
    },
    async createAesKey(keyLabel, attributes) {
      const request = { pkcs11js: require.resolve('pkcs11js'), modulePath, tokenLabel: label, pin, keyLabel, ...attributes };
      await execFileAsync(process.execPath, ['-e', CREATE_KEY_SCRIPT], {
        env: { ...process.env, SOFTHSM2_CONF: confPath, ARCA_CREATE_KEY: JSON.stringify(request) },
      });
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
