// The browser as the attacker's tool (issue 23), in headless Chromium against the real
// `goviral serve`: a page on another port of the same host cannot sign the victim in as the
// attacker (login CSRF); a victim who consents through an attacker's connect link does not
// hand over their platform account (account-linking CSRF); a file whose bytes are HTML is
// never opened as a page on the dashboard's origin (blob XSS).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { apiCall, launchBrowser, outputPath, startServer } from "./harness.mjs";

/** A page of the attacker's, served on another port of 127.0.0.1 (same site, other origin). */
async function attackerSite(html) {
  const server = createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

async function signIn(page, base, apiKey) {
  await page.goto(base + "/");
  await page.getByLabel("API key").fill(apiKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Analyze content" }).waitFor();
}

describe("attacks through a browser", { timeout: 180_000 }, () => {
  let server, browser;

  before(async () => {
    // A YouTube app is configured so connections can start; the refusal tested here comes
    // before its API would ever be called (nothing listens on port 9).
    server = await startServer({
      GOVIRAL_YOUTUBE_CLIENT_ID: "goviral-test-client",
      GOVIRAL_YOUTUBE_CLIENT_SECRET: "goviral-test-secret",
      GOVIRAL_YOUTUBE_BASE_URL: "http://127.0.0.1:9",
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("a page on another port cannot sign the victim in as the attacker", async () => {
    const mallory = server.user("mallory@example.com", "pro");
    // Every way a page can send a body without asking the browser first: a typeless Blob,
    // a string (text/plain), and a text/plain form.
    const site = await attackerSite(`<!DOCTYPE html><html><body>
      <form id="f" method="POST" action="${server.base}/api/v1/auth/session" enctype="text/plain" target="sink">
        <input name='{"api_key":"${mallory.api_key}","x":"' value='"}'>
      </form><iframe name="sink"></iframe>
      <script>
        const body = JSON.stringify({ api_key: ${JSON.stringify(mallory.api_key)} });
        Promise.allSettled([
          fetch(${JSON.stringify(server.base + "/api/v1/auth/session")}, { method: "POST", mode: "no-cors", credentials: "include", body: new Blob([body]) }),
          fetch(${JSON.stringify(server.base + "/api/v1/auth/session")}, { method: "POST", mode: "no-cors", credentials: "include", body }),
        ]).then(() => { document.getElementById("f").submit(); setTimeout(() => { document.title = "sent"; }, 500); });
      </script></body></html>`);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(site.url);
    await page.waitForFunction(() => document.title === "sent");
    assert.equal((await context.cookies()).filter((c) => c.name === "gv_session").length, 0, "no session was set");
    await page.goto(server.base + "/");
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    assert.ok(!(await page.getByText("mallory@example.com").isVisible()), "not signed in as the attacker");
    await page.screenshot({ path: outputPath("attack-01-login-csrf.png") });
    await context.close();
    await site.close();
  });

  it("consenting through someone else's connect link links nothing", async () => {
    const mallory = server.user("mallory2@example.com", "pro");
    const victim = server.user("victim@example.com", "pro");
    const started = await apiCall(server.base, mallory.api_key, "POST", "/api/v1/accounts/connect", { platform: "youtube" });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, server.base, victim.api_key);
    // The victim consents on the platform, which sends their browser back with mallory's
    // state and a code for the victim's channel.
    await page.goto(`${server.base}/api/v1/accounts/callback?state=${encodeURIComponent(started.body.state)}&code=victims-code`);
    await page.waitForURL(/\/accounts$/);
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.match(await alert.innerText(), /started by another GoViralNow account/);
    await page.screenshot({ path: outputPath("attack-02-account-linking.png"), fullPage: true });
    for (const who of [mallory, victim]) {
      const listed = await apiCall(server.base, who.api_key, "GET", "/api/v1/accounts");
      assert.deepEqual(listed.body.items, [], `${who.user_id} has no account linked`);
    }
    await context.close();
  });

  it("a file whose bytes are HTML is a download, never a page", async () => {
    const victim = server.user("victim2@example.com", "pro");
    const html = `<!DOCTYPE html><html><body><script>fetch("/api/v1/keys",{method:"POST",headers:{"content-type":"application/json"},body:"{}"}).then(()=>document.title="ran")</script></body></html>`;
    const created = await apiCall(server.base, victim.api_key, "POST", "/api/v1/uploads", { media_type: "text/plain", size_bytes: Buffer.byteLength(html) });
    const put = await fetch(created.body.upload.url, { method: "PUT", headers: created.body.upload.headers, body: html });
    assert.equal(put.status, 200);
    const ready = await apiCall(server.base, victim.api_key, "GET", `/api/v1/uploads/${created.body.upload_id}`);
    const url = ready.body.download.url;
    const head = await fetch(url);
    assert.equal(head.headers.get("x-content-type-options"), "nosniff");
    assert.equal(head.headers.get("content-security-policy"), "default-src 'none'; sandbox");
    assert.equal(head.headers.get("content-disposition"), "attachment");
    const keysBefore = (await apiCall(server.base, victim.api_key, "GET", "/api/v1/keys")).body.items.length;

    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await signIn(page, server.base, victim.api_key);
    const download = page.waitForEvent("download");
    await page.goto(url).catch(() => {}); // a download is not a navigation
    await download;
    // And framed in a page of the dashboard's origin, it still runs nothing.
    await page.goto(server.base + "/");
    await page.evaluate((src) => {
      const frame = document.createElement("iframe");
      frame.src = src;
      document.body.appendChild(frame);
    }, url);
    await page.waitForTimeout(1_000);
    const keysAfter = (await apiCall(server.base, victim.api_key, "GET", "/api/v1/keys")).body.items.length;
    assert.equal(keysAfter, keysBefore, "the file's script never ran with the victim's session");
    await context.close();
  });
});
