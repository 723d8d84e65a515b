import { ArcaError, ArcaErrorCode } from '../errors/arca-error.ts';

// A small glob matcher for `arca find`:
//
//   *        any run of characters except `/` (may be empty)
//   ?        one character except `/`
//   **       any run of characters including `/`; as a whole segment (`a/**/b`, `**/x`, `x/**`)
//            it stands for zero or more path segments, so `a/**/b` also matches `a/b`
//   [abc] [a-z] [!a-z] [^a-z]   one character (never `/`) from / not from the class
//   \c       the character c literally
//
// Matching is case-sensitive and always covers the whole string.

/** Compile a glob pattern to an anchored RegExp. */
export function compileGlob(pattern: string): RegExp {
  let re = '';
  let i = 0;
  const n = pattern.length;
  while (i < n) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // collapse runs of 3+ stars into one `**`
        let j = i + 2;
        while (pattern[j] === '*') j++;
        const segStart = i === 0 || pattern[i - 1] === '/';
        const segEnd = j === n || pattern[j] === '/';
        if (segStart && segEnd) {
          if (j === n) {
            // trailing `**` (or the whole pattern): anything, including nothing after a `/`
            re += '.*';
            i = j;
          } else {
            // `**/`: zero or more whole segments
            re += '(?:.*/)?';
            i = j + 1;
          }
        } else {
          re += '.*';
          i = j;
        }
        continue;
      }
      re += '[^/]*';
      i++;
    } else if (c === '?') {
      re += '[^/]';
      i++;
    } else if (c === '[') {
      const end = classEnd(pattern, i);
      if (end < 0) {
        re += '\\[';
        i++;
        continue;
      }
      let body = pattern.slice(i + 1, end);
      let negate = false;
      if (body.startsWith('!') || body.startsWith('^')) {
        negate = true;
        body = body.slice(1);
      }
      re += `(?![/])[${negate ? '^' : ''}${escapeClass(body)}]`;
      i = end + 1;
    } else if (c === '\\') {
      if (i + 1 >= n) throw new ArcaError(ArcaErrorCode.InvalidArgument, `pattern "${pattern}" ends with a lone backslash`);
      re += escapeRegex(pattern[i + 1]!);
      i += 2;
    } else {
      re += escapeRegex(c);
      i++;
    }
  }
  return new RegExp(`^${re}$`, 's');
}

/** Index of the `]` closing the class opened at `start`, or -1 (then `[` is literal). */
function classEnd(pattern: string, start: number): number {
  let j = start + 1;
  if (pattern[j] === '!' || pattern[j] === '^') j++;
  if (pattern[j] === ']') j++; // a leading `]` is a member
  while (j < pattern.length) {
    if (pattern[j] === '\\') j += 2;
    else if (pattern[j] === ']') return j;
    else j++;
  }
  return -1;
}

function escapeClass(body: string): string {
  let out = '';
  for (let k = 0; k < body.length; k++) {
    const ch = body[k]!;
    if (ch === '\\' && k + 1 < body.length) {
      out += '\\' + body[++k]!;
    } else if (ch === '-') {
      out += '-';
    } else if (ch === ']' || ch === '[' || ch === '^') {
      out += '\\' + ch;
    } else {
      out += ch;
    }
  }
  return out;
}

function escapeRegex(ch: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(ch) ? '\\' + ch : ch;
}

/** True if `pattern` matches the whole of `subject`. */
export function globMatch(pattern: string, subject: string): boolean {
  return compileGlob(pattern).test(subject);
}
