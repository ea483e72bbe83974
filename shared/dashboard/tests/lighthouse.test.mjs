// Lighthouse on the submit page and a finished job's page, signed in, against the real
// `goviral serve`: performance, accessibility and best practices must each reach 0.90, on a
// phone (Lighthouse's default: a mid-range phone on a throttled network) and on a desktop.
// The figures are printed and written to tests/output/lighthouse.json.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { apiCall, CHROMIUM, CHROMIUM_ARGS, outputPath, startServer } from "./harness.mjs";

const CATEGORIES = ["performance", "accessibility", "best-practices"];
const THRESHOLD = 0.9;

describe("Lighthouse", { timeout: 600_000 }, () => {
  let server, chrome, cookie, jobId;
  const results = {};

  before(async () => {
    server = await startServer();
    const me = server.user("lighthouse@example.com", "pro");
    const session = await fetch(server.base + "/api/v1/auth/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ api_key: me.api_key }),
    });
    assert.equal(session.status, 200);
    cookie = session.headers.get("set-cookie").split(";")[0];
    const job = await apiCall(server.base, me.api_key, "POST", "/api/v1/analyze", {
      content_type: "text",
      caption: "5 mistakes everyone makes with sourdough. Which one do you make? Comment below!",
      platform_hint: "tiktok",
      user_id: me.user_id,
    });
    jobId = job.body.job_id;
    for (let i = 0; i < 100; i++) {
      const j = await apiCall(server.base, me.api_key, "GET", `/api/v1/analyze/${jobId}`);
      if (j.body.status === "complete") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const { launch } = await import("chrome-launcher");
    chrome = await launch({ chromePath: CHROMIUM, chromeFlags: ["--headless=new", ...CHROMIUM_ARGS] });
  });

  after(async () => {
    writeFileSync(outputPath("lighthouse.json"), JSON.stringify(results, null, 2));
    chrome?.kill();
    await server?.stop();
  });

  for (const formFactor of ["mobile", "desktop"]) {
    for (const [name, path] of [
      ["submit page", () => "/"],
      ["job page", () => `/jobs/${jobId}`],
    ]) {
      it(`${name} on ${formFactor} scores ${THRESHOLD} or more`, async () => {
        const { default: lighthouse } = await import("lighthouse");
        const config = formFactor === "desktop" ? (await import("lighthouse/core/config/desktop-config.js")).default : undefined;
        const run = await lighthouse(
          server.base + path(),
          { port: chrome.port, output: "json", logLevel: "error", onlyCategories: CATEGORIES, extraHeaders: { Cookie: cookie } },
          config,
        );
        const scores = Object.fromEntries(CATEGORIES.map((c) => [c, run.lhr.categories[c].score]));
        const failing = Object.values(run.lhr.audits)
          .filter((a) => a.score !== null && a.score < 1 && a.scoreDisplayMode !== "informative" && a.scoreDisplayMode !== "notApplicable")
          .map((a) => `${a.id}: ${a.score}${a.displayValue ? ` (${a.displayValue})` : ""}`);
        results[`${name} (${formFactor})`] = { scores, lcp_ms: run.lhr.audits["largest-contentful-paint"]?.numericValue, below_full_marks: failing };
        console.log(`${name} (${formFactor}): ${CATEGORIES.map((c) => `${c} ${scores[c]}`).join(", ")}`);
        for (const c of CATEGORIES) {
          assert.ok(scores[c] >= THRESHOLD, `${c} ${scores[c]} < ${THRESHOLD}; audits below full marks: ${failing.join("; ")}`);
        }
      });
    }
  }
});
