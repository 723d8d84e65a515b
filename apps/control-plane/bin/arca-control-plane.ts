#!/usr/bin/env node
// The control plane's entry point. Plain TypeScript (no decorators) so Node can strip it; it
// installs the decorator-aware loader, then loads the application.
import '../loader/decorators-loader.ts';

const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
