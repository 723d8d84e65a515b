import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import { exportAgentPrivateKey, generateAgentIdentity, type AgentIdentity } from '@arca/crypto';
import type { Command } from 'commander';
import { examples, type CliApp } from '../cli/command.ts';
import type { CliContext } from '../cli/context.ts';
import { CliError } from '../cli/errors.ts';
import { agentKeyFile, readAgentIdentity } from '../cli/key-proxy-options.ts';
import { registerAgentDaemonCommands } from './agent-daemon-command.ts';

/**
 * `arca agent`: the agent's own Ed25519 identity for managed stores. The private key never leaves
 * this machine; its public key's thumbprint is what the control plane binds job tokens to and what
 * a key custodian approves (strict mode).
 */
export function registerAgentCommand(program: Command, app: CliApp): void {
  const agent = program.command('agent').description('this agent\'s identity for managed stores, and the managed agent daemon (enroll, run)');
  examples(agent, ['arca agent keygen --out /etc/arca/agent.pem', 'arca agent show-key --agent-key /etc/arca/agent.pem']);

  const keygen = agent
    .command('keygen')
    .description('create this agent\'s key (Ed25519, PKCS#8 PEM, mode 0600) and print its thumbprint')
    .requiredOption('--out <file>', 'where to write the private key; an existing file is never overwritten')
    .action(
      app.action(async (ctx, command) => {
        const { out } = command.opts<{ out: string }>();
        const identity = generateAgentIdentity();
        await writeNewPrivateFile(out, exportAgentPrivateKey(identity));
        printIdentity(ctx, path.resolve(out), identity, true);
      }),
    );
  examples(keygen, [
    'arca agent keygen --out /etc/arca/agent.pem',
    'arca agent keygen --out ~/.config/arca/agent.pem --json | jq -r .thumbprint',
  ]);
  keygen.addHelpText(
    'after',
    `
Give the thumbprint to the control plane when enrolling this machine: job tokens are bound to it.
In strict mode a key custodian approves it for each store with
  arca-key-proxy grant approve --org ORG --store STORE_ID --agent-key-thumbprint THUMBPRINT`,
  );

  const showKey = agent
    .command('show-key')
    .description('print the thumbprint and public key (JWK) of the agent key given by --agent-key / ARCA_AGENT_KEY_FILE')
    .action(
      app.action(async (ctx) => {
        const file = agentKeyFile(ctx);
        printIdentity(ctx, path.resolve(file), await readAgentIdentity(file), false);
      }),
    );
  examples(showKey, ['arca agent show-key --agent-key /etc/arca/agent.pem', 'ARCA_AGENT_KEY_FILE=/etc/arca/agent.pem arca agent show-key --json']);

  registerAgentDaemonCommands(agent, app);
}

function printIdentity(ctx: CliContext, file: string, identity: AgentIdentity, created: boolean): void {
  if (ctx.out.json) {
    ctx.out.jsonDocument({ file, thumbprint: identity.thumbprint, publicJwk: identity.publicJwk });
    return;
  }
  if (ctx.out.quiet) {
    ctx.out.result(identity.thumbprint);
    return;
  }
  if (created) ctx.out.result(`created agent key ${file}`);
  else ctx.out.result(`agent key ${file}`);
  ctx.out.result(`thumbprint: ${identity.thumbprint}`);
  ctx.out.result(`public key: ${JSON.stringify(identity.publicJwk)}`);
  if (created) {
    ctx.out.info('');
    ctx.out.info('Give the thumbprint to the control plane when enrolling this agent. Keep the key file private:');
    ctx.out.info('whoever has it can use this agent\'s job tokens. If it is lost, create a new one and re-enroll.');
  }
}

/**
 * Write `content` to a new file, mode 0600, atomically and without ever replacing an existing
 * file: write a temporary file next to it, then hard-link it into place (link fails if the
 * target exists). File systems without hard links get an exclusive create instead.
 */
export async function writeNewPrivateFile(file: string, content: string): Promise<void> {
  const exists = () =>
    new CliError('AGENT_KEY_EXISTS', `${file} already exists`, {
      hint: 'keep using it, or choose another --out; replacing an agent key makes the tokens bound to it useless',
    });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const writeTo = async (target: string) => {
    const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
  try {
    await writeTo(tmp);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError('AGENT_KEY_FILE', `cannot write ${file}${code ? ` (${code})` : ''}`, { hint: 'check that the directory exists and is writable' });
  }
  try {
    await link(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw exists();
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      try {
        await writeTo(file);
      } catch (err2) {
        if ((err2 as NodeJS.ErrnoException).code === 'EEXIST') throw exists();
        throw err2;
      }
    } else {
      throw err;
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  // make the new directory entry durable
  const dir = await open(path.dirname(file), constants.O_RDONLY).catch(() => undefined);
  await dir?.sync().catch(() => undefined);
  await dir?.close();
}
