import type { Command } from 'commander';
import { KEY_PROXY_ENV_HELP, loadKeyProxyConfig } from '../config/key-proxy-config.ts';
import { startKeyProxy } from '../key-proxy-app.ts';
import { JsonLogger } from '../logging/json-logger.ts';
import { bufferedStdout } from '../logging/buffered-line-sink.ts';
import type { CliIo } from './cli-io.ts';
import { ExitCode } from './exit-codes.ts';
import { examples } from './help.ts';

/**
 * `arca-key-proxy serve`: configuration from the environment only; prints one JSON log line with
 * `"msg":"listening"` and `"url"` when ready; SIGTERM/SIGINT stop it gracefully (exit 0).
 */
export function registerServeCommand(program: Command, io: CliIo, onExit: (code: number) => void): void {
  const width = Math.max(...KEY_PROXY_ENV_HELP.map(([name]) => name.length));
  const serve = program
    .command('serve')
    .description('run the key proxy (configured by ARCA_KP_* environment variables)')
    .addHelpText('after', `\nEnvironment:\n${KEY_PROXY_ENV_HELP.map(([name, help]) => `  ${name.padEnd(width)}  ${help}`).join('\n')}`)
    .action(async () => {
      const { config, warnings } = loadKeyProxyConfig(io.env);
      // the process's own stdout gets the batching sink; an injected stream (tests) is written directly
      const sink = io.stdout === process.stdout ? bufferedStdout() : { write: (line: string) => io.stdout.write(line) };
      const logger = new JsonLogger({ level: config.logLevel, sink });
      for (const warning of warnings) logger.warn(warning);
      const proxy = await startKeyProxy(config, { logger });
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: NodeJS.Signals) => {
          if (stopping) {
            logger.warn('second signal: exiting without waiting', { signal });
            onExit(ExitCode.Error);
            return;
          }
          stopping = true;
          logger.info('shutting down', { signal });
          proxy.close().then(resolve, (err: unknown) => {
            logger.error('shutdown failed', { error: err });
            resolve();
          });
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
  examples(serve, [
    'ARCA_KP_DATA_DIR=/var/lib/arca-key-proxy ARCA_KP_ISSUER=https://cp.example.com \\',
    '  ARCA_KP_JWKS_URL=https://cp.example.com/.well-known/jwks.json \\',
    '  ARCA_KP_PROVIDER=vault ARCA_KP_VAULT_ADDR=https://vault:8200 ARCA_KP_VAULT_TOKEN_FILE=/run/secrets/vault-token ARCA_KP_VAULT_KEY=arca \\',
    '  ARCA_KP_LISTEN=0.0.0.0:8700 ARCA_KP_PUBLIC_URL=https://keyproxy.example.com \\',
    '  ARCA_KP_TLS_CERT_FILE=/etc/arca-key-proxy/tls.crt ARCA_KP_TLS_KEY_FILE=/etc/arca-key-proxy/tls.key arca-key-proxy serve',
    '',
    'development (local KEK, loopback):',
    'arca-key-proxy kek create-local --out ./kek.hex',
    'ARCA_KP_DATA_DIR=./kp ARCA_KP_ISSUER=http://localhost:3000 ARCA_KP_JWKS_FILE=./jwks.json ARCA_KP_LOCAL_KEK_FILE=./kek.hex arca-key-proxy serve',
  ]);
}
