// One error type per layer, each with a stable `code` that callers and tests
// match on. Messages follow the house style: capital first letter, no final
// period, a colon before detail, and they name the thing at fault and what
// would be accepted.

const MARK = Symbol.for('launcher.error');

export class LauncherError extends Error {
  readonly code: string;
  /** Exit code a command should end with when this error reaches the top. */
  readonly exitCode: number;
  constructor(code: string, message: string, opts: { exitCode?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LauncherError';
    this.code = code;
    this.exitCode = opts.exitCode ?? 1;
    (this as unknown as Record<symbol, boolean>)[MARK] = true;
  }
  // `x instanceof LauncherError` survives bundling and duplicated module copies
  // (a marker, not the prototype chain). Subclasses inherit this static method,
  // so for them fall back to the ordinary prototype check: otherwise every
  // LauncherError would pass `instanceof DockerError`.
  static [Symbol.hasInstance](this: unknown, v: unknown): boolean {
    if (this !== LauncherError) return Function.prototype[Symbol.hasInstance].call(this, v);
    return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[MARK] === true;
  }
}

/** A configuration or usage error: start-up stops with exit code 2. */
export class ConfigError extends LauncherError {
  constructor(message: string, opts: { code?: string; cause?: unknown } = {}) {
    super(opts.code ?? 'CONFIG_INVALID', message, { exitCode: 2, cause: opts.cause });
    this.name = 'ConfigError';
  }
}

export function isLauncherError(e: unknown): e is LauncherError {
  return e instanceof LauncherError;
}
