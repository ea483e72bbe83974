import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run build` writes dist/, which `goviral serve` serves at / (GOVIRAL_DASHBOARD_DIR).
// `npx vite` serves the sources with the API proxied to a running `goviral serve`.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, target: "es2022" },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/blobs": "http://127.0.0.1:8080",
    },
  },
});
