import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// The duty console is served by the Python backend (FastAPI StaticFiles at `/`) from ../static, which is built
// here and never committed. `npm run dev` proxies /api to a backend on 127.0.0.1:8080 (SMARTCITY_API to change).
const api = process.env.SMARTCITY_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  plugins: [preact({ prerender: { enabled: false } })],
  build: {
    outDir: '../static',
    emptyOutDir: true,
    target: 'es2020',
    chunkSizeWarningLimit: 800,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: {
      '/api': { target: api, changeOrigin: false },
    },
  },
});
