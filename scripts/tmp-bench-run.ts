// usage: tmp-bench-run.ts init|backup|restore STORE [PATH|TARGET]
import { Store, FsBackend, backup, restore, resolveSnapshot } from '@arca/engine';
const [cmd, storeDir, arg] = process.argv.slice(2) as [string, string, string];
const kdf = { memoryKiB: 8192, iterations: 1, parallelism: 1 };
if (cmd === 'init') await Store.init(new FsBackend(storeDir), { passphrase: 'pw', kdf, zstdLevel: Number(process.env.LVL ?? 3) });
else {
  const store = await Store.open(new FsBackend(storeDir), { passphrase: 'pw' });
  if (cmd === 'backup') { const r = await backup(store, { paths: [arg] }); console.log(JSON.stringify(r.snapshot.summary)); }
  else { const r = await restore(store, await resolveSnapshot(store, 'latest'), { target: arg }); console.log(r.files, r.bytes, r.warnings.length); }
}
