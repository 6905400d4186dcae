// The console's build: static files in dist/console that any static host can serve. Paths are
// relative (base "./") so the files work from any directory; nothing is loaded from outside.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const root = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root,
  base: "./",
  publicDir: false,
  build: {
    outDir: path.resolve(root, "../dist/console"),
    emptyOutDir: true,
    target: "es2022",
    // One entry, a few hundred kB: no chunk splitting needed; report sizes uncompressed and gzipped.
    chunkSizeWarningLimit: 1024,
    reportCompressedSize: true,
  },
  server: {
    host: "127.0.0.1",
    // The shared timeline module lives in tasks/lib and the ABIs in artifacts/.
    fs: { allow: [path.resolve(root, "..")] },
  },
});
