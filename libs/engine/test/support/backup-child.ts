// Runs one backup in its own process, so tests can kill it (SIGKILL) or run it as another user.
// usage: backup-child.ts STORE_DIR SOURCE_DIR  (passphrase from ARCA_TEST_PASSPHRASE)
import { backup, FsBackend, Store } from '../../src/index.ts';

const [storeDir, source] = process.argv.slice(2) as [string, string];
const store = await Store.open(new FsBackend(storeDir), { passphrase: process.env.ARCA_TEST_PASSPHRASE ?? '' });
const result = await backup(store, { paths: [source] });
process.stdout.write(JSON.stringify({ id: result.id, warnings: result.warnings, summary: result.snapshot.summary }) + '\n');
