/* global process, console */
// Plain JavaScript on purpose: it must give a clear message even on an old Node that cannot run .ts.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 24 || (major === 24 && minor < 7)) {
  console.error(`arca needs Node.js >= 24.7 (built-in zstd, Argon2id, TypeScript type stripping); this is ${process.version}.`);
  console.error('Run it through npm (`npm start`, `npm test`, `npm run arca -- ...`): the project pins Node 24 as a dev dependency.');
  process.exit(1);
}
