// The Web Share Target: the service worker (public/sw.js) receives what the phone shares
// (POST /share-target, multipart), keeps it in the cache named below for a moment, and opens
// `/?shared=1`; the submit page takes it from there, once.

export const SHARE_CACHE = "gv-share";
export const SHARE_FILE = "/share-target/file";
export const SHARE_TEXT = "/share-target/text";

export interface SharedItem {
  file: File | null;
  text: string | null;
}

export async function takeSharedItem(): Promise<SharedItem | null> {
  if (!("caches" in window)) return null;
  const cache = await caches.open(SHARE_CACHE);
  const [fileResponse, textResponse] = await Promise.all([cache.match(SHARE_FILE), cache.match(SHARE_TEXT)]);
  await Promise.all([cache.delete(SHARE_FILE), cache.delete(SHARE_TEXT)]);
  if (!fileResponse && !textResponse) return null;
  let file: File | null = null;
  if (fileResponse) {
    const blob = await fileResponse.blob();
    const name = decodeURIComponent(fileResponse.headers.get("x-file-name") ?? "shared-video");
    file = new File([blob], name, { type: blob.type });
  }
  return { file, text: textResponse ? await textResponse.text() : null };
}
