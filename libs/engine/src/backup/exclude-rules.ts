import { readFileSync } from 'node:fs';
import ignore, { type Ignore } from 'ignore';
import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';

/**
 * Exclude rules in gitignore syntax, matched against the absolute path (without its leading `/`):
 * `*.log` matches at any depth, `/var/cache` only that path, `build/` only directories, `!keep.log`
 * re-includes.
 */
export class ExcludeRules {
  private readonly matcher: Ignore;
  readonly patterns: string[];

  constructor(patterns: string[] = [], files: string[] = []) {
    const all = [...patterns];
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new ArcaError(ArcaErrorCode.InvalidArgument, `cannot read exclude file ${file}: ${(err as Error).message}`);
      }
      all.push(...text.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.startsWith('#')));
    }
    this.patterns = all;
    this.matcher = ignore({ allowRelativePaths: true }).add(all);
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  excludes(absPath: string, isDir: boolean): boolean {
    if (this.patterns.length === 0) return false;
    const rel = absPath.replace(/^\/+/, '');
    if (rel === '') return false;
    return this.matcher.ignores(isDir ? `${rel}/` : rel);
  }
}
