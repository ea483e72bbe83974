// What the browser tests and the Lighthouse check share: the real `goviral serve` (API,
// pipeline and the built dashboard) on a free loopback port with a fresh data dir, a user
// made by the operator CLI, and Debian's Chromium driven by playwright-core.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../../..");
export const DASHBOARD_DIST = resolve(here, "../dist");
export const OUTPUT = resolve(here, "output");
export const CHROMIUM = process.env.CHROME_PATH ?? "/usr/bin/chromium";
// Chromium on a machine with no network but loopback: no background traffic, no sandbox (root).
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

function goviralBinary() {
  const target = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME ?? "/root", ".cache/goviral-target");
  return process.env.GOVIRAL_BIN ?? join(target, "debug/goviral");
}

/** Starts `goviral serve` and resolves once it listens; `stop()` ends it and removes its data. */
export async function startServer(extraEnv = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "goviral-browser-"));
  const env = {
    ...process.env,
    GOVIRAL_DATA_DIR: dataDir,
    GOVIRAL_DASHBOARD_DIR: DASHBOARD_DIST,
    GOVIRAL_LOG_JSON: "true",
    RUST_LOG: process.env.RUST_LOG ?? "warn",
    ...extraEnv,
  };
  const bin = goviralBinary();
  const run = (args) => JSON.parse(execFileSync(bin, args, { env, encoding: "utf8" }));
  const child = spawn(bin, ["serve", "--bind", "127.0.0.1:0"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const logs = [];
  createInterface({ input: child.stderr }).on("line", (l) => logs.push(l));
  const base = await new Promise((resolveBase, reject) => {
    const timer = setTimeout(() => reject(new Error("goviral serve did not start in 30 s:\n" + logs.join("\n"))), 30_000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const listening = JSON.parse(line).listening;
        if (listening) {
          clearTimeout(timer);
          resolveBase(listening);
        }
      } catch {
        /* not the start-up line */
      }
    });
    child.on("exit", (code) => reject(new Error(`goviral serve exited (${code}):\n` + logs.join("\n"))));
  });
  return {
    base,
    logs,
    /** A user made with the operator CLI: {user_id, api_key, client_secret}. */
    user: (email, plan = "pro", role = null) => run(["users", "create", "--email", email, "--plan", plan, ...(role ? ["--role", role] : [])]),
    /** The operator CLI's `goviral model …`, on this server's database. */
    model: (...args) => run(["model", ...args]),
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** playwright-core (no browser download) on Debian's Chromium. */
export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

export function outputPath(name) {
  mkdirSync(OUTPUT, { recursive: true });
  return join(OUTPUT, name);
}

/** A short MP4 made by ffmpeg: a test pattern with a caption burned in and a synthetic voice
 * (espeak-ng) saying a hook. */
export function makeClip(path, seconds = 5) {
  const voice = path.replace(/\.mp4$/, ".wav");
  execFileSync("espeak-ng", ["-w", voice, "Stop scrolling. Here is the one edit that doubled our watch time."]);
  execFileSync("ffmpeg", [
    "-v", "error", "-y",
    "-f", "lavfi", "-i", `testsrc2=s=320x240:r=25:d=${seconds}`,
    "-i", voice,
    "-vf", "drawtext=text='WAIT FOR IT':fontsize=32:fontcolor=white:borderw=3:x=(w-text_w)/2:y=h*0.7",
    "-af", "apad", "-t", String(seconds),
    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", path,
  ]);
  rmSync(voice, { force: true });
  return readFileSync(path);
}

/** A JSON request to the API with an API key (for setting up, not for what is under test). */
export async function apiCall(base, apiKey, method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { "x-api-key": apiKey, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}
