#!/usr/bin/env node
// The `arca-key-proxy` executable. Node >= 24 runs this TypeScript directly (type stripping).
import module from 'node:module';

module.enableCompileCache?.();

// `arca-key-proxy grant list | head`: a closed pipe ends the output quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const { runKeyProxyCli } = await import('../src/cli/key-proxy-cli.ts');
const code = await runKeyProxyCli(process.argv);
process.exitCode = code;
// `serve` has closed everything it opened; do not wait for a provider SDK's idle sockets to time out
if (process.argv[2] === 'serve') process.exit(code);
