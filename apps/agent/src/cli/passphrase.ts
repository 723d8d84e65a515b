import { readFile } from 'node:fs/promises';
import { CliError, InterruptedError } from './errors.ts';
import type { CliContext } from './context.ts';
import type { CliIo } from './io.ts';

const HOW_TO_GIVE = 'set ARCA_PASSPHRASE, pass --passphrase-file FILE (or set ARCA_PASSPHRASE_FILE), or run arca in a terminal to be asked for it';
const HOW_TO_GIVE_NEW = 'set ARCA_NEW_PASSPHRASE, pass --new-passphrase-file FILE, or run arca in a terminal to be asked for it';

/** The first line of a passphrase file, without its line ending. */
export async function readPassphraseFile(file: string, what = 'passphrase file'): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError('PASSPHRASE_FILE', `cannot read ${what} ${file}${code ? ` (${code})` : ''}`, { hint: 'check the path and its permissions' });
  }
  const line = text.split(/\r?\n/, 1)[0] ?? '';
  if (line.length === 0) throw new CliError('EMPTY_PASSPHRASE', `the first line of ${what} ${file} is empty`, { hint: 'put the passphrase on the first line' });
  return line;
}

function canPrompt(io: CliIo): boolean {
  return io.isTTY.stdin && typeof io.stdin.setRawMode === 'function';
}

/**
 * The passphrase of an existing store, from (in order) --passphrase-file, ARCA_PASSPHRASE_FILE,
 * ARCA_PASSPHRASE, or a no-echo prompt on a terminal (a file, the more explicit choice, wins). With `confirm` (init) the prompt asks twice.
 */
export async function getPassphrase(ctx: CliContext, options: { confirm?: boolean; prompt?: string } = {}): Promise<string> {
  const { io, globals } = ctx;
  let passphrase: string | undefined;
  if (globals.passphraseFile) passphrase = await readPassphraseFile(globals.passphraseFile);
  else if (io.env.ARCA_PASSPHRASE_FILE) passphrase = await readPassphraseFile(io.env.ARCA_PASSPHRASE_FILE, 'ARCA_PASSPHRASE_FILE');
  else if (io.env.ARCA_PASSPHRASE !== undefined && io.env.ARCA_PASSPHRASE !== '') passphrase = io.env.ARCA_PASSPHRASE;
  else if (canPrompt(io)) passphrase = await promptNew(ctx, options.prompt ?? 'passphrase', options.confirm ?? false);
  else throw new CliError('NO_PASSPHRASE', 'no passphrase given, and there is no terminal to ask for one', { hint: HOW_TO_GIVE });
  ctx.out.addSecret(passphrase);
  return passphrase;
}

/** A new passphrase for `key add`: --new-passphrase-file, ARCA_NEW_PASSPHRASE, or asked twice. */
export async function getNewPassphrase(ctx: CliContext, file: string | undefined): Promise<string> {
  const { io } = ctx;
  let passphrase: string;
  if (file) passphrase = await readPassphraseFile(file, 'new passphrase file');
  else if (io.env.ARCA_NEW_PASSPHRASE !== undefined && io.env.ARCA_NEW_PASSPHRASE !== '') passphrase = io.env.ARCA_NEW_PASSPHRASE;
  else if (canPrompt(io)) passphrase = await promptNew(ctx, 'new passphrase', true);
  else throw new CliError('NO_PASSPHRASE', 'no new passphrase given, and there is no terminal to ask for one', { hint: HOW_TO_GIVE_NEW });
  ctx.out.addSecret(passphrase);
  return passphrase;
}

async function promptNew(ctx: CliContext, label: string, confirm: boolean): Promise<string> {
  const first = await promptHidden(ctx.io, `enter ${label}: `);
  if (first.length === 0) throw new CliError('EMPTY_PASSPHRASE', 'an empty passphrase is not allowed');
  if (!confirm) return first;
  const second = await promptHidden(ctx.io, `repeat ${label}: `);
  if (first !== second) throw new CliError('PASSPHRASE_MISMATCH', 'the passphrases do not match', { hint: 'run the command again and type the same passphrase twice' });
  return first;
}

/** Read a line from a terminal without echoing it. Ctrl-C interrupts, Ctrl-U clears. */
export function promptHidden(io: CliIo, prompt: string): Promise<string> {
  const stdin = io.stdin;
  io.stderr.write(prompt);
  return new Promise<string>((resolve, reject) => {
    let chars: string[] = [];
    const wasRaw = stdin.isRaw ?? false;
    stdin.setRawMode?.(true);
    stdin.setEncoding('utf8');
    const finish = (err?: Error) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.setRawMode?.(wasRaw);
      stdin.pause();
      io.stderr.write('\n');
      if (err) reject(err);
      else resolve(chars.join(''));
    };
    const onEnd = () => finish(chars.length === 0 ? new CliError('NO_PASSPHRASE', 'no passphrase entered') : undefined);
    const onData = (chunk: string | Buffer) => {
      for (const ch of String(chunk)) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new InterruptedError());
        if (ch === '\u0004') return onEnd();
        if (ch === '\u007f' || ch === '\b') chars.pop();
        else if (ch === '\u0015') chars = [];
        else if (ch >= ' ') chars.push(ch);
      }
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.resume();
  });
}
