// The web console's browser code, bundled by esbuild: lib/console/app/main.ts
// (Preact + htm, @noble/ciphers) into one minified ES module, and
// lib/console/app/console.css into one stylesheet. Used by build.mjs (the
// result is embedded in the executable) and by the server when it runs from
// source (built in memory on start-up), so both serve the same bytes.
import { build } from 'esbuild';
import { join } from 'node:path';

/** @returns {Promise<{ js: string, css: string, inputs: string[] }>} `inputs`: every source file in the script, relative to root. */
export async function bundleConsole(root) {
  const common = { bundle: true, minify: true, write: false, logLevel: 'silent', legalComments: 'none' };
  const js = await build({
    ...common,
    entryPoints: [join(root, 'lib/console/app/main.ts')],
    outfile: 'app.js',
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    // The browser has no process: libraries that look at NODE_ENV get production.
    define: { 'process.env.NODE_ENV': '"production"' },
    metafile: true,
  });
  const css = await build({
    ...common,
    entryPoints: [join(root, 'lib/console/app/console.css')],
    outfile: 'app.css',
    target: ['chrome110', 'firefox115', 'safari16'],
  });
  const text = (r) => r.outputFiles[0].text;
  return { js: text(js), css: text(css), inputs: Object.keys(js.metafile.inputs) };
}
