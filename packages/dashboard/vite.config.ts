// Builds the dashboard into dist/ as plain files @bulwark/server serves at `/`: relative asset URLs
// (`base: './'`) so it works behind any path prefix, and nothing inline, so the server's CSP
// (`script-src 'self'; style-src 'self'`) needs no exception.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  // Vite 8 transforms with oxc: Preact's automatic JSX runtime, no preset plugin needed.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The polyfill would be one more script for browsers that all support modulepreload now.
    modulePreload: { polyfill: false },
    // Never inline assets as data: URLs; everything is a file under ./assets/.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
