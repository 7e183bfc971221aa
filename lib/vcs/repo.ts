// Repository URLs and refs as the user and the Git servers write them: what a
// stack may name as its source, and the one form two spellings of the same
// repository compare equal in (a webhook names the repository by its clone
// URL, its web URL or its SSH URL).

/** Why a `--repo` value is refused, or undefined when it is accepted. */
export function repoUrlProblem(url: string): string | undefined {
  let u: URL;
  try { u = new URL(url); } catch { return 'it is not a URL'; }
  if (u.protocol !== 'https:' && u.protocol !== 'http:' && u.protocol !== 'file:') {
    return `the scheme ${u.protocol.replace(/:$/, '')} is not supported`;
  }
  if (u.username || u.password) {
    // The URL is stored in the clear on the server: a token in it would not be sealed.
    return 'it holds a user name or password; give those with --repo-credential USER:TOKEN, which is sealed';
  }
  if (u.protocol === 'file:' && (u.host !== '' || !u.pathname.startsWith('/'))) return 'a file URL must be file:///absolute/path on the worker host';
  if (u.protocol !== 'file:' && u.host === '') return 'it names no host';
  if (u.search || u.hash) return 'it has a query or fragment';
  return undefined;
}

export const REPO_URL_HINT = 'an https://, http:// (Git smart HTTP) or file:///path URL of the repository, without credentials';

/**
 * The comparable form of a repository URL: host (lowercase, with a
 * non-default HTTP port) and path, without scheme, user, trailing slash or `.git`.
 * `git@host:owner/repo.git` (scp-like SSH) and `ssh://` become the same form,
 * so a webhook that names only its SSH URL still finds the stack.
 */
export function repoKey(url: string): string | undefined {
  const scp = /^(?:[^@/]+@)?([^:/]+):(?!\/)(.+)$/.exec(url);
  let host: string;
  let path: string;
  if (scp && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    host = scp[1]!.toLowerCase();
    path = '/' + scp[2]!;
  } else {
    let u: URL;
    try { u = new URL(url); } catch { return undefined; }
    if (u.protocol === 'file:') return `file:${trimPath(decodeURIComponent(u.pathname))}`;
    // A non-default port tells two servers on one host apart (http/https
    // only: an SSH port says nothing about the web side).
    host = (u.protocol === 'http:' || u.protocol === 'https:' ? u.host : u.hostname).toLowerCase();
    path = decodeURIComponent(u.pathname);
  }
  return `${host}${trimPath(path)}`;
}

function trimPath(p: string): string {
  let out = p.replace(/\/+$/, '');
  if (out.toLowerCase().endsWith('.git')) out = out.slice(0, -4);
  return out.replace(/\/+$/, '').toLowerCase();
}

/** A branch name git would accept (check-ref-format, the parts a user can get wrong). */
export function branchProblem(name: string): string | undefined {
  if (name === '' || name.length > 255) return 'it is empty or longer than 255 characters';
  if (name.startsWith('refs/')) return 'give the branch name without refs/heads/';
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return 'it contains a space, a control character or one of ~ ^ : ? * [ \\';
  if (name.startsWith('/') || name.endsWith('/') || name.includes('//') || name.includes('..') || name.includes('@{')) return 'it has an empty component, "..", or "@{"';
  if (name.endsWith('.') || name.endsWith('.lock') || name.split('/').some((c) => c.startsWith('.'))) return 'a component starts with "." or it ends with "." or ".lock"';
  if (name === '@') return '"@" is not a branch name';
  return undefined;
}

export const SHA_RE = /^[0-9a-f]{40}$/;
export const ZERO_SHA = '0'.repeat(40);
