// Path filters (`--trigger-path GLOB`): a push runs a stack only when one of
// its commits touched a matching path, so a monorepo's stacks each run for
// their own directory. The glob language is the one .gitignore users know:
//   *    any characters except "/"        ?   one character except "/"
//   **   any characters including "/" (as a whole segment: "a/**/b", "dir/**")
//   [ab] one of the characters
// A pattern matches the whole path from the repository root; "dir/" (a
// trailing slash) means everything under dir.

export function globToRegExp(glob: string): RegExp {
  let g = glob.replace(/^\/+/, '');
  if (g.endsWith('/')) g += '**';
  let re = '';
  for (let i = 0; i < g.length; i++) {
    const c = g[i]!;
    if (c === '*') {
      if (g[i + 1] === '*') {
        const atStart = i === 0 || g[i - 1] === '/';
        const atEnd = i + 2 === g.length || g[i + 2] === '/';
        if (atStart && atEnd) {
          // "**/" matches zero or more whole directories; a final "**" anything.
          if (i + 2 === g.length) re += '.*';
          else { re += '(?:.*/)?'; i++; }
          i++;
          continue;
        }
        re += '[^/]*';
        i++;
        continue;
      }
      re += '[^/]*';
    } else if (c === '?') {
      re += '[^/]';
    } else if (c === '[') {
      const end = g.indexOf(']', i + 2);
      if (end === -1) { re += '\\['; continue; }
      let body = g.slice(i + 1, end).replace(/\\/g, '\\\\');
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += `[${body}]`;
      i = end;
    } else {
      re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

/** Why a trigger path is refused, or undefined. */
export function globProblem(glob: string): string | undefined {
  if (glob.trim() === '' || glob.length > 512) return 'it is empty or longer than 512 characters';
  if (glob.split('/').includes('..')) return 'it contains ".."';
  try { globToRegExp(glob); } catch { return 'it is not a valid pattern'; }
  return undefined;
}

export const GLOB_HINT = 'a path pattern from the repository root, e.g. "infra/**", "modules/*/main.tf" or "docs/"';

/**
 * Whether a push with these changed paths runs a stack with these filters.
 * `changed` undefined means the payload did not say (truncated commit lists,
 * a forced push): the stack runs, since skipping a change is the worse error.
 */
export function pathsMatch(filters: string[], changed: string[] | undefined): boolean {
  if (filters.length === 0 || changed === undefined) return true;
  const res = filters.map(globToRegExp);
  return changed.some((p) => res.some((re) => re.test(p)));
}
