// GoViralNow's service worker: the app shell works offline, API data is never cached (a
// score or a history page is always the server's latest), and the Web Share Target hands a
// video shared from the phone's gallery to a new analysis.

const SHELL = "gv-shell-v1";
const ASSETS = "gv-assets-v1";
const SHARE = "gv-share"; // read by src/share.ts
const SHELL_FILES = ["/", "/manifest.webmanifest", "/icon.svg", "/icon-192.png", "/icon-512.png"];
const MAX_ASSETS = 60;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((c) => c.addAll(SHELL_FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => ![SHELL, ASSETS, SHARE].includes(n)).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;

  if (request.method === "POST" && url.pathname === "/share-target") {
    event.respondWith(receiveShare(request));
    return;
  }
  if (request.method !== "GET") return;
  // The API, signed blob URLs and the live stream always go to the network.
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/blobs/") || url.pathname === "/healthz") return;

  if (request.mode === "navigate") {
    // The page from the network (a new build shows at once); offline, the cached shell.
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok) caches.open(SHELL).then((c) => c.put("/", response.clone()));
          return response;
        })
        .catch(() => caches.match("/")),
    );
    return;
  }
  if (url.pathname.startsWith("/assets/")) {
    // Built assets are named by their hash and never change.
    event.respondWith(
      caches.match(request).then(
        (hit) =>
          hit ||
          fetch(request).then((response) => {
            if (response.ok) {
              const copy = response.clone();
              caches.open(ASSETS).then(async (c) => {
                await c.put(request, copy);
                const keys = await c.keys();
                await Promise.all(keys.slice(0, Math.max(0, keys.length - MAX_ASSETS)).map((k) => c.delete(k)));
              });
            }
            return response;
          }),
      ),
    );
    return;
  }
  if (SHELL_FILES.includes(url.pathname)) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
  }
});

/** Keeps what was shared for the submit page (which takes it once) and opens it. */
async function receiveShare(request) {
  try {
    const form = await request.formData();
    const cache = await caches.open(SHARE);
    const media = form.get("media");
    if (media && typeof media !== "string") {
      await cache.put(
        "/share-target/file",
        new Response(media, { headers: { "content-type": media.type || "application/octet-stream", "x-file-name": encodeURIComponent(media.name || "shared-video") } }),
      );
    }
    const text = [form.get("title"), form.get("text"), form.get("url")].filter((v) => typeof v === "string" && v.trim()).join("\n");
    if (text) await cache.put("/share-target/text", new Response(text, { headers: { "content-type": "text/plain; charset=utf-8" } }));
  } catch {
    // Nothing usable was shared: the submit page opens empty.
  }
  return Response.redirect("/?shared=1", 303);
}
