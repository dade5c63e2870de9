// Bundles the demo page (web/src) into web/dist with esbuild: no CDN, served by the server at /.
// Skips quietly when esbuild is absent (a production install with --omit=dev ships the built files).
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const entry = join(here, 'src/main.ts');
if (!existsSync(entry)) process.exit(0);
let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  console.warn('web/build.mjs: esbuild is not installed; the demo page is not rebuilt');
  process.exit(0);
}
mkdirSync(join(here, 'dist'), { recursive: true });
await esbuild.build({
  entryPoints: [entry],
  bundle: true,
  // The SDK from its source (see packages/client/package.json's exports), so no prior build is needed.
  conditions: ['switchboard:source'],
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outfile: join(here, 'dist/app.js'),
  logLevel: 'warning',
});
for (const f of ['index.html', 'style.css']) if (existsSync(join(here, 'src', f))) cpSync(join(here, 'src', f), join(here, 'dist', f));
