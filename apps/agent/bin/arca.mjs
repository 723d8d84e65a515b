#!/usr/bin/env node
// The `arca` executable. Plain JavaScript on purpose: Node >= 24 runs the TypeScript sources it
// imports directly, but stripping types needs a WebAssembly module (~15 MiB, ~50 ms) that the
// compile cache below spares every other file of; only an entry file written in TypeScript would
// still load it on every run.
import module from 'node:module';
import process from 'node:process';

// Cache compiled code between runs (the engine pulls in the AWS SDK): roughly halves start-up time.
// Enabled before the dynamic import below so that it covers the whole module graph.
module.enableCompileCache?.();
// Worker threads start their own module loader: the environment variable carries the cache to them.
process.env.NODE_COMPILE_CACHE ??= module.getCompileCacheDir?.();

// `arca ls | head`: a closed pipe ends the output quietly instead of with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const { runCli } = await import('../src/main.ts');
const code = await runCli(process.argv);
// 130 (interrupted): background work (workers, uploads) may still be running; stop it now.
if (code === 130) process.exit(code);
process.exitCode = code;
