/// <reference types="vitest/config" />
import { defineConfig } from 'vite';

export default defineConfig({
  // The Tauri shell serves dist/ from its embedded assets, so every URL must be relative.
  base: './',
  // Tauri prints its own output; keep Vite's messages on screen.
  clearScreen: false,
  server: {
    // Fixed port so the shell's devUrl can point at it.
    port: 1420,
    strictPort: true,
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // WebView2 (Chromium) on Windows, WKWebView / WebKitGTK elsewhere.
    target: ['es2021', 'chrome105', 'safari15'],
  },
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
    // Time formatting uses the local zone (what the user sees); pin it so assertions are stable.
    env: { TZ: 'UTC' },
  },
});
