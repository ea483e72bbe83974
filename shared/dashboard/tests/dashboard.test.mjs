// The dashboard in headless Chromium against the real `goviral serve`: sign in, a caption
// completing live, a video with its media timeline, three variants compared, history paged,
// a key revoked (and the session that rode on it ended), deep links, the phone's width,
// offline. Screenshots go to tests/output/.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { ROOT, apiCall, launchBrowser, makeClip, outputPath, startServer } from "./harness.mjs";

describe("the dashboard", { timeout: 300_000 }, () => {
  let server, browser, context, page, me;
  const errors = [];

  before(async () => {
    server = await startServer();
    me = server.user("creator@example.com", "pro");
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("signs in with an API key, which the browser does not keep", async () => {
    await page.goto(server.base + "/");
    await page.getByLabel("API key").fill("gvk_wrong_key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    assert.match(await page.getByRole("alert").innerText(), /invalid API key/i);

    await page.getByLabel("API key").fill(me.api_key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Analyze content" }).waitFor();
    assert.ok(await page.getByText("creator@example.com").isVisible());
    const storage = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    assert.ok(!storage.includes(me.api_key), "the key is nowhere the page can read");
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "gv_session");
    assert.ok(session?.httpOnly && session.sameSite === "Strict", JSON.stringify(cookies));
    await page.screenshot({ path: outputPath("01-signed-in.png"), fullPage: true });
  });

  let captionJob;
  it("can be used from the keyboard", async () => {
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("value")), "text", "the page's first control");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.id), "caption");
    await page.keyboard.type("Typed from the keyboard");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.tagName), "SELECT");
    await page.getByLabel("Caption or post text").fill("");
  });

  it("submits a caption and watches it complete live", async () => {
    await page.getByLabel("Caption or post text").fill("5 mistakes everyone makes with sourdough. Which one do you make? Comment below!");
    await page.getByLabel("Platform").selectOption("tiktok");
    await page.getByRole("button", { name: "Analyze" }).click();
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
    captionJob = page.url().split("/").pop();
    await page.getByRole("status").filter({ hasText: "Done" }).waitFor({ timeout: 30_000 });
    // Every stage came through the live stream, in order.
    const stages = await page.locator(".stages li").allInnerTexts();
    assert.deepEqual(stages.map((s) => s.split("\n")[0]), ["Queued", "Moderation", "Extraction", "Scoring", "Done"]);
    assert.equal(await page.locator(".stage.done").count(), 5);
    const gauge = await page.getByRole("img", { name: /Score \d+ out of 100/ }).getAttribute("aria-label");
    assert.match(gauge, /likely between \d+ and \d+, confidence \d+%/);
    assert.equal(await page.locator("meter").count(), 5, "five sub-scores");
    assert.equal(await page.locator(".insights > li").count(), 5, "five insights");
    assert.ok((await page.locator(".fixes li").count()) >= 1, "with fixes");
    // No outcomes yet: the baseline against the creator's own posts says what it needs.
    const baseline = page.locator(".card", { has: page.getByRole("heading", { name: "Against your own posts" }) });
    assert.match(await baseline.innerText(), /Once 5 of your posts on tiktok have outcomes \(0 so far\)/);
    // No account connected: following the published post starts there.
    const follow = page.locator(".card", { has: page.getByRole("heading", { name: "Follow the published post" }) });
    assert.match(await follow.innerText(), /Connect an account to follow how this post does/);
    await page.screenshot({ path: outputPath("02-caption-result.png"), fullPage: true });
  });

  it("uploads a small video with a progress bar and shows its media timeline", async () => {
    const clip = join(tmpdir(), `gv-browser-${process.pid}.mp4`);
    makeClip(clip, 5);
    await page.getByRole("link", { name: "Analyze", exact: true }).click();
    await page.getByLabel("A video").check();
    await page.getByLabel(/^Video \(MP4/).setInputFiles(clip);
    await page.getByLabel("Caption (optional)").fill("Wait for it: the one edit that doubled our watch time");
    await page.getByRole("button", { name: "Analyze" }).click();
    await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/, { timeout: 60_000 });
    await page.getByRole("heading", { name: "Media timeline" }).waitFor({ timeout: 120_000 });
    const timeline = await page.getByRole("img", { name: /Timeline of a 5\.\d second video/ }).getAttribute("aria-label");
    assert.match(timeline, /[1-9]\d* spoken segments?, [1-9]\d* frames with text/, "speech and on-screen text were found");
    await page.getByText("Transcript").click();
    assert.match(await page.locator(".transcript").innerText(), /scrolling/i);
    // The stills load through their signed URLs.
    const still = page.locator(".stills img").first();
    await still.waitFor();
    await page.waitForFunction(() => [...document.querySelectorAll(".stills img")].every((i) => i.complete && i.naturalWidth > 0));
    assert.ok(await still.evaluate((i) => i.naturalWidth > 0));
    assert.match(await page.locator(".facts").innerText(), /Loudness\s+-?\d+\.\d LUFS/);
    assert.ok(await page.getByText("Done", { exact: true }).first().isVisible());
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
    await page.screenshot({ path: outputPath("03-video-timeline.png"), fullPage: true });
  });

  it("compares three variants and shows the ranking with reasons", async () => {
    await page.getByRole("link", { name: "Compare" }).click();
    await page.getByRole("textbox", { name: "Variant 1" }).fill("Dad gives a speech");
    await page.getByRole("textbox", { name: "Variant 2" }).fill("Why 3 million people watched this dad's 2-minute speech");
    await page.getByRole("textbox", { name: "Variant 3" }).fill("A wedding speech");
    await page.getByRole("button", { name: "Rank them" }).click();
    const rows = page.locator("table.ranking tbody tr");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 3);
    assert.match(await rows.first().innerText(), /3 million people/);
    assert.match(await rows.first().locator("td").nth(3).innerText(), /^\d+%$/);
    assert.ok((await rows.first().locator(".fixes li").count()) >= 1, "the winner says why");
    await page.screenshot({ path: outputPath("04-compare.png"), fullPage: true });
  });

  it("shows usage against the allowance, with a chart by kind", async () => {
    await page.getByRole("link", { name: "Usage" }).click();
    const allowance = page.getByLabel(/units used/);
    await allowance.waitFor();
    // The caption, the one-minute video and the comparison so far.
    assert.match(await page.locator("label[for=allowance]").innerText(), /^3 of 1,000 units used/);
    const chart = await page.getByRole("img", { name: /Units used per day/ }).getAttribute("aria-label");
    assert.match(chart, /the most in one day was 3/);
    assert.equal(await page.locator(".usage-chart rect.kind-compare").count(), 1);
    await page.screenshot({ path: outputPath("05-usage.png"), fullPage: true });
  });

  it("pages through history with the cursor, both ways", async () => {
    const ids = [];
    for (let i = 0; i < 11; i++) {
      const r = await apiCall(server.base, me.api_key, "POST", "/api/v1/analyze", { content_type: "text", caption: `History item ${i}`, user_id: me.user_id });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids.push(r.body.job_id);
    }
    // Settled first, so a row does not change status between two readings of a page.
    for (const id of ids) {
      for (let i = 0; i < 100 && (await apiCall(server.base, me.api_key, "GET", `/api/v1/analyze/${id}`)).body.status !== "complete"; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await page.getByRole("link", { name: "History" }).click();
    const rows = page.locator("tbody tr");
    await page.locator('#history-page[aria-busy="false"]').waitFor();
    assert.equal(await rows.count(), 10);
    const jobsShown = () => rows.locator("a").evaluateAll((links) => links.map((a) => a.getAttribute("href")));
    const firstPage = await jobsShown();
    await page.getByRole("button", { name: "Older" }).click();
    await page.locator('#history-page[aria-busy="false"]', { hasText: "Page 2" }).waitFor();
    const secondPage = await jobsShown();
    assert.equal(secondPage.length, 3, "13 jobs: 10, then 3");
    assert.ok(secondPage.every((r) => !firstPage.includes(r)));
    assert.ok(await page.getByRole("button", { name: "Older" }).isDisabled());
    await page.getByRole("button", { name: "Newer" }).click();
    await page.locator('#history-page[aria-busy="false"]', { hasText: "Page 1" }).waitFor();
    assert.deepEqual(await jobsShown(), firstPage);
    await page.getByLabel("Status").selectOption("complete");
    await page.waitForFunction(() => [...document.querySelectorAll("tbody .badge")].every((b) => b.textContent === "complete"));
    await page.screenshot({ path: outputPath("06-history.png"), fullPage: true });
  });

  it("lists connected accounts and says plainly when a platform cannot be connected here", async () => {
    await page.getByRole("link", { name: "Accounts" }).click();
    await page.getByRole("heading", { name: "Accounts", level: 1 }).waitFor();
    await page.getByText("None yet.").waitFor();
    // This server has no YouTube app registered: the API's reason is shown, and the page stays.
    await page.getByRole("button", { name: "Connect YouTube" }).click();
    await page.getByRole("alert").waitFor();
    assert.match(await page.getByRole("alert").innerText(), /no youtube app configured/i);
    assert.match(page.url(), /\/accounts$/);
    await page.screenshot({ path: outputPath("07a-accounts.png"), fullPage: true });
  });

  it("issues a key, revokes it, and a session on a revoked key ends", async () => {
    page.on("dialog", (d) => d.accept());
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByRole("button", { name: "Issue a new key" }).click();
    const shown = await page.locator(".secret input").inputValue();
    assert.match(shown, /^gvk_/);
    await page.getByRole("button", { name: "Done" }).click();
    const prefix = shown.split("_")[1];
    await page.getByRole("button", { name: `Revoke key ${prefix}` }).click();
    await page.locator("tr", { hasText: prefix }).getByText("revoked").waitFor();
    const revoked = await apiCall(server.base, shown, "GET", "/api/v1/keys");
    assert.equal(revoked.status, 403, "the revoked key no longer works");
    await page.screenshot({ path: outputPath("07-keys.png"), fullPage: true });

    // Revoking the key this session was opened with signs the browser out.
    const own = me.api_key.split("_")[1];
    await page.getByRole("button", { name: `Revoke key ${own}` }).click();
    await page.getByRole("heading", { name: "Sign in to GoViralNow" }).waitFor();
  });

  it("opens a job by its link, on a phone's width too", async () => {
    const other = server.user("second@example.com", "free");
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    await p.goto(server.base + "/");
    await p.getByLabel("API key").fill(other.api_key);
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByRole("heading", { name: "Analyze content" }).waitFor();
    // Another user's job is not theirs to see.
    await p.goto(`${server.base}/jobs/${captionJob}`);
    await p.getByRole("alert").waitFor();
    assert.match(await p.getByRole("alert").innerText(), /not found/i);
    const r = await apiCall(server.base, other.api_key, "POST", "/api/v1/analyze", { content_type: "text", caption: "On my phone: 3 tips for better light", user_id: other.user_id });
    await p.goto(`${server.base}/jobs/${r.body.job_id}`);
    await p.getByRole("heading", { name: "What to change" }).waitFor({ timeout: 30_000 });
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow}px too wide)`);
    await p.screenshot({ path: outputPath("08-phone-job.png"), fullPage: true });

    // Installable: the manifest names the app, its icons and the share target.
    const manifest = await (await fetch(server.base + "/manifest.webmanifest")).json();
    assert.equal(manifest.display, "standalone");
    assert.ok(manifest.icons.some((i) => i.sizes === "512x512"));
    assert.equal(manifest.share_target.action, "/share-target");

    // A video shared from the gallery (the share target POSTs it to the service worker) opens
    // a new analysis with the video chosen and the shared text as its caption.
    await p.evaluate(() => navigator.serviceWorker.ready);
    await p.reload();
    const opened = await p.evaluate(async () => {
      const form = new FormData();
      form.append("media", new File([new Uint8Array([0, 0, 0, 24, 102, 116, 121, 112])], "from-gallery.mp4", { type: "video/mp4" }));
      form.append("text", "Shared from my phone");
      const r = await fetch("/share-target", { method: "POST", body: form });
      return r.url;
    });
    assert.match(opened, /\/\?shared=1$/);
    await p.goto(server.base + "/?shared=1");
    await p.getByText(/from-gallery\.mp4/).waitFor();
    assert.ok(await p.getByLabel("A video").isChecked());
    assert.equal(await p.getByLabel("Caption (optional)").inputValue(), "Shared from my phone");
    await p.screenshot({ path: outputPath("09-phone-shared.png") });

    // Offline, the shell still opens (the service worker), and says it is offline.
    await p.waitForFunction(() => navigator.serviceWorker?.controller !== null || navigator.serviceWorker?.ready);
    await p.evaluate(() => navigator.serviceWorker.ready);
    await p.reload();
    await phone.setOffline(true);
    await p.reload();
    await p.getByText(/offline/i).first().waitFor();
    await p.screenshot({ path: outputPath("10-phone-offline.png") });
    await phone.setOffline(false);
    await phone.close();
  });

  it("shows an operator the server's metrics, charted", async () => {
    const ops = server.user("ops@example.com", "enterprise", "admin");
    const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const p = await admin.newPage();
    await p.goto(server.base + "/");
    await p.getByLabel("API key").fill(ops.api_key);
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByRole("link", { name: "Operations" }).click();
    await p.getByRole("heading", { name: "Requests by route" }).waitFor();
    await p.locator("table").first().locator("tbody tr").first().waitFor();
    const routes = await p.locator("table").first().innerText();
    assert.match(routes, /POST \/api\/v1\/analyze/);
    assert.match(await p.locator("table").nth(1).innerText(), /inference\s+ok/);
    // Later readings draw the request rates.
    await p.locator("table").first().locator("svg.sparkline").first().waitFor({ timeout: 20_000 });
    await p.screenshot({ path: outputPath("11-operations.png"), fullPage: true });
    // The model registry: a candidate that does not beat the serving model is approved only
    // with a reason, then promoted, then rolled back, each decision shown with who made it.
    const gate = join(tmpdir(), `gate-${process.pid}.csv`);
    writeFileSync(gate, "clickability_test_id,headline,impressions,clicks\nt1,You will not believe this,1000,90\nt1,A thing happened,1000,20\n");
    const registered = server.model("register", "--file", join(ROOT, "shared/scoring/model/headline.gvnm"), "--training-data", gate, "--gate", gate);
    assert.equal(registered.gate_passed, false, "the same model is not better than itself");
    const reasons = [];
    p.on("dialog", (d) => {
      reasons.push(d.message());
      d.accept("browser test: same model, checking the flow");
    });
    await p.reload();
    const models = p.locator(".card", { has: p.getByRole("heading", { name: "Scorer models" }) });
    await models.getByText("The built-in model serves").waitFor();
    await models.getByRole("button", { name: "Approve anyway…" }).click();
    await models.getByRole("button", { name: "Promote" }).waitFor();
    assert.match(reasons[0], /did not beat the serving model/);
    assert.match(await models.innerText(), /approved over the gate[\s\S]*browser test: same model/);
    await models.getByRole("button", { name: "Promote" }).click();
    await models.getByText(/Serving headline@1 since/).waitFor();
    assert.equal(await models.getByRole("button", { name: "Roll back" }).count(), 0, "nothing served before it");
    // A second version promoted over it; rolling back brings the first back.
    server.model("register", "--file", join(ROOT, "shared/scoring/model/headline.gvnm"), "--training-data", gate, "--gate", gate);
    await p.reload();
    await models.getByRole("button", { name: "Approve anyway…" }).click();
    await models.getByRole("button", { name: "Promote" }).click();
    await models.getByText(/Serving headline@2 since/).waitFor();
    await p.screenshot({ path: outputPath("11b-models.png"), fullPage: true });
    await models.getByRole("button", { name: "Roll back" }).click();
    await models.getByText(/Serving headline@1 since/).waitFor();
    assert.match(await models.locator("tbody").innerText(), /headline@2[\s\S]*retired/);
    // Not for customers: the page is not offered, and the data is refused.
    const customer = server.user("customer@example.com", "pro");
    const refused = await apiCall(server.base, customer.api_key, "GET", "/metrics?format=json");
    assert.equal(refused.status, 403);
    await admin.close();
  });

  it("logged no errors in the page", () => {
    // The deliberate failures (wrong key, another user's job, revoked key, a platform with no
    // app here) answer 401/403/404/422, which Chromium logs as failed loads; anything else is a bug.
    const unexpected = errors.filter((e) => !/status of (401|403|404|422)/.test(e));
    assert.deepEqual(unexpected, []);
  });
});
