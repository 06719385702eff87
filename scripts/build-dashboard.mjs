/**
 * Builds the dashboard page into `dist/monitor/dashboard/public` (or the directory given as the first
 * argument): app.js bundled with uPlot by esbuild, uPlot's stylesheet and ours in app.css, index.html.
 * Part of `npm run build`, so the package ships the built page and needs no build step at runtime.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const client = join(root, 'src/monitor/dashboard/client');

/** Builds the page into `outDir`; returns the paths written. */
export async function buildDashboard(outDir = join(root, 'dist/monitor/dashboard/public')) {
  await mkdir(outDir, { recursive: true });
  await build({
    entryPoints: [join(client, 'app.js')],
    outfile: join(outDir, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const uplotCss = await readFile(join(root, 'node_modules/uplot/dist/uPlot.min.css'), 'utf8');
  const css = await readFile(join(client, 'app.css'), 'utf8');
  await writeFile(join(outDir, 'app.css'), `${uplotCss}\n${css}`);
  await copyFile(join(client, 'index.html'), join(outDir, 'index.html'));
  return ['index.html', 'app.js', 'app.css'].map((file) => join(outDir, file));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const written = await buildDashboard(process.argv[2] === undefined ? undefined : resolve(process.argv[2]));
  process.stdout.write(`dashboard: wrote ${written.length} files to ${dirname(written[0])}\n`);
}
