// The console's browser files. In the executable they are embedded at build
// time (build.mjs defines LAUNCHER_CONSOLE_ASSETS); from source the server
// bundles them in memory with the same script on start-up, so what a developer
// sees is what ships. Each file is also kept gzipped (level 9) once, and named
// by a content hash so browsers may cache it for good.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { LauncherError } from '../errors.ts';

declare const LAUNCHER_CONSOLE_ASSETS: { js: string; css: string } | undefined;

export interface Asset {
  /** URL path, e.g. /console/app.3f9a1c.js */
  path: string;
  type: string;
  body: Buffer;
  gzip: Buffer;
  sha256: string;
}

export interface ConsoleAssets {
  js: Asset;
  css: Asset;
  icon: Asset;
}

// A small mark for the tab (served, so the page needs no data: URL).
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1f4f8f"/><path d="M4 4h2v6h6v2H4z" fill="#fff"/></svg>';

function asset(name: string, ext: string, type: string, text: string): Asset {
  const body = Buffer.from(text, 'utf8');
  const sha256 = createHash('sha256').update(body).digest('hex');
  return { path: `/console/${name}.${sha256.slice(0, 12)}.${ext}`, type, body, gzip: gzipSync(body, { level: 9 }), sha256 };
}

export function assetsFrom(files: { js: string; css: string }): ConsoleAssets {
  return {
    js: asset('app', 'js', 'text/javascript; charset=utf-8', files.js),
    css: asset('app', 'css', 'text/css; charset=utf-8', files.css),
    icon: asset('icon', 'svg', 'image/svg+xml', ICON),
  };
}

let loaded: Promise<ConsoleAssets> | undefined;

export function loadConsoleAssets(): Promise<ConsoleAssets> {
  loaded ??= (async () => {
    if (typeof LAUNCHER_CONSOLE_ASSETS === 'object' && LAUNCHER_CONSOLE_ASSETS !== null) return assetsFrom(LAUNCHER_CONSOLE_ASSETS);
    // From source: the bundler is a dev dependency, loaded by a computed path
    // so the executable's bundle never tries to include it.
    const script = new URL('../../scripts/console-bundle.mjs', import.meta.url).href;
    try {
      const mod = (await import(script)) as { bundleConsole(root: string): Promise<{ js: string; css: string }> };
      return assetsFrom(await mod.bundleConsole(new URL('../..', import.meta.url).pathname));
    } catch (e) {
      throw new LauncherError('CONSOLE_BUILD_FAILED', `Cannot build the web console from source: ${(e as Error).message} (run npm install, or use the built executable)`, { cause: e });
    }
  })();
  return loaded;
}
