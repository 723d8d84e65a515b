import { once } from 'node:events';
import type { CliIo } from './io.ts';

/** Something drawn on stderr that must be erased before other output and redrawn after. */
export interface StatusLine {
  clear(): void;
  redraw(): void;
}

/**
 * All command output goes through here:
 * - results on stdout (`result`), suppressed with --json (commands print JSON instead);
 * - chatter on stdout (`info`), suppressed with --json or --quiet;
 * - warnings and errors on stderr, never suppressed, with known secrets redacted;
 * - `--json`: exactly one JSON document (`jsonDocument`) or JSON Lines (`jsonLine`) on stdout.
 */
const MIN_MASKED_SECRET = 12;

export class Output {
  readonly json: boolean;
  readonly quiet: boolean;
  private readonly io: CliIo;
  private readonly secrets = new Set<string>();
  private status: StatusLine | undefined;
  private documentWritten = false;

  constructor(io: CliIo, options: { json: boolean; quiet: boolean }) {
    this.io = io;
    this.json = options.json;
    this.quiet = options.quiet || options.json;
  }

  /**
   * Defence in depth: mask this string (a passphrase) should it ever appear in a warning or error.
   * Nothing is meant to print it. Short secrets are not masked: "test" or "arca" also occur in
   * ordinary messages, and masking those occurrences would reveal the passphrase.
   */
  addSecret(secret: string): void {
    if (secret.length >= MIN_MASKED_SECRET) this.secrets.add(secret);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('***');
    return out;
  }

  setStatusLine(status: StatusLine | undefined): void {
    this.status = status;
  }

  clearProgress(): void {
    this.status?.clear();
  }

  private stdout(text: string): void {
    this.status?.clear();
    this.io.stdout.write(text);
    this.status?.redraw();
  }

  private stderr(text: string): void {
    this.status?.clear();
    this.io.stderr.write(this.redact(text));
    this.status?.redraw();
  }

  /** A line of the command's result (tables, listings): not shown with --json. */
  result(line = ''): void {
    if (!this.json) this.stdout(`${line}\n`);
  }

  /** Informational line: not shown with --quiet or --json. */
  info(line = ''): void {
    if (!this.quiet) this.stdout(`${line}\n`);
  }

  /** The single JSON document of a --json run. */
  jsonDocument(value: unknown): void {
    if (this.documentWritten) return;
    this.documentWritten = true;
    this.stdout(`${JSON.stringify(value)}\n`);
  }

  /** One record of a JSON Lines stream (ls, find, diff). */
  jsonLine(value: unknown): void {
    this.stdout(`${JSON.stringify(value)}\n`);
  }

  warn(message: string): void {
    this.stderr(`arca: warning: ${message}\n`);
  }

  /** A raw line on stderr (error reporting). */
  error(line: string): void {
    this.stderr(`${line}\n`);
  }

  /** Prompts and other direct terminal text on stderr. */
  stderrRaw(text: string): void {
    this.stderr(text);
  }

  /** Raw bytes to stdout with back-pressure (`arca cat`). */
  async writeBytes(data: Uint8Array): Promise<void> {
    const stream = this.io.stdout;
    if (!stream.write(data)) await once(stream, 'drain');
  }
}
