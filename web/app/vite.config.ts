import { defineConfig } from "vite";

// The page is plain TypeScript modules: Vite bundles them with their packages into
// dist/, which the web server (the `web` crate) serves. Asset names carry a content hash.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
});
