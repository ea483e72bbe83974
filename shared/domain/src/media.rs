//! Video by URL: which `source_url`s are media the product fetches, and what a fetched file
//! is, decided by its first bytes (never by the URL's extension or the server's header).

use uuid::Uuid;

/// The largest file fetched from a `source_url`: the same bound as an uploaded video.
pub const FETCH_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// How many bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 64;

/// Where the one immutable copy of a job's fetched video lives; every later read is of it.
pub fn fetched_key(job_id: Uuid) -> String {
    format!("fetched/{job_id}")
}

/// What a file is by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A video container the analyser reads, with its media type.
    Video(&'static str),
    /// Sound with no picture (an MP3, a WAV, an M4A): not a video.
    Audio(&'static str),
    Image(&'static str),
    /// A web page: usually a platform's page for the video rather than the video itself.
    Html,
    /// Anything else (text, JSON, an archive, nothing at all).
    Other,
}

impl Sniffed {
    /// Why a file of this kind is not analysed, in words a user can act on; None for video.
    pub fn refusal(self) -> Option<String> {
        const FIX: &str = "upload the file, or give a direct link to the video file (MP4, MOV or WebM)";
        match self {
            Sniffed::Video(_) => None,
            Sniffed::Audio(t) => Some(format!("the URL gave audio ({t}), not a video; {FIX}")),
            Sniffed::Image(t) => Some(format!("the URL gave an image ({t}), not a video; {FIX}")),
            Sniffed::Html => Some(format!("the URL gave a web page (HTML), not a video file; {FIX}")),
            Sniffed::Other => Some(format!("the URL did not give a video file; {FIX}")),
        }
    }
}

/// Decides what a file is from its first [`SNIFF_BYTES`] bytes (fewer if the file is shorter).
pub fn sniff(head: &[u8]) -> Sniffed {
    // ISO base media (MP4, MOV, M4A): a box size, then `ftyp` and the major brand.
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return match &head[8..12] {
            b"qt  " => Sniffed::Video("video/quicktime"),
            b"M4A " | b"M4B " | b"M4P " => Sniffed::Audio("audio/mp4"),
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" => Sniffed::Image("image/heif"),
            _ => Sniffed::Video("video/mp4"),
        };
    }
    // Older QuickTime files start with a `moov`, `mdat`, `wide` or `free` atom.
    if head.len() >= 8 && matches!(&head[4..8], b"moov" | b"mdat" | b"wide" | b"free" | b"skip") {
        return Sniffed::Video("video/quicktime");
    }
    if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return Sniffed::Video("video/webm"); // EBML: WebM or Matroska
    }
    if head.starts_with(b"ID3") || (head.len() >= 2 && head[0] == 0xff && (head[1] & 0xe0) == 0xe0) {
        return Sniffed::Audio("audio/mpeg");
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") {
        return match &head[8..12] {
            b"WAVE" => Sniffed::Audio("audio/wav"),
            b"WEBP" => Sniffed::Image("image/webp"),
            _ => Sniffed::Other, // AVI is RIFF too, but not a format we decode for analysis
        };
    }
    if head.starts_with(b"OggS") {
        return Sniffed::Audio("audio/ogg");
    }
    if head.starts_with(b"fLaC") {
        return Sniffed::Audio("audio/flac");
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return Sniffed::Image("image/jpeg");
    }
    if head.starts_with(b"\x89PNG") {
        return Sniffed::Image("image/png");
    }
    if head.starts_with(b"GIF8") {
        return Sniffed::Image("image/gif");
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).map(|i| &text[i..]).unwrap_or_default();
    let lower: Vec<u8> = start.iter().take(14).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") || lower.starts_with(b"<head") || lower.starts_with(b"<!--") {
        return Sniffed::Html;
    }
    Sniffed::Other
}

/// The platform whose page `url` is, when it is a page rather than a media file: those are
/// refused at submission, since the product does not scrape platforms.
pub fn platform_page(url: &url::Url) -> Option<&'static str> {
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let host = host.strip_prefix("www.").or_else(|| host.strip_prefix("m.")).unwrap_or(&host);
    let on = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if on("tiktok.com") {
        Some("TikTok")
    } else if on("youtube.com") || on("youtu.be") || on("youtube-nocookie.com") {
        Some("YouTube")
    } else if on("instagram.com") {
        Some("Instagram")
    } else if on("facebook.com") || on("fb.watch") {
        Some("Facebook")
    } else if on("x.com") || on("twitter.com") {
        Some("X")
    } else if on("linkedin.com") {
        Some("LinkedIn")
    } else if on("vimeo.com") && !on("player.vimeo.com") {
        Some("Vimeo")
    } else if on("snapchat.com") {
        Some("Snapchat")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_told_apart_by_their_first_bytes() {
        assert_eq!(sniff(b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2"), Sniffed::Video("video/mp4"));
        assert_eq!(sniff(b"\0\0\0\x14ftypqt  \0\0\0\0qt  "), Sniffed::Video("video/quicktime"));
        assert_eq!(sniff(b"\0\0\0\x1cftypM4A \0\0\0\0"), Sniffed::Audio("audio/mp4"));
        assert_eq!(sniff(&[0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81]), Sniffed::Video("video/webm"));
        assert_eq!(sniff(b"ID3\x04\0\0\0\0"), Sniffed::Audio("audio/mpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Sniffed::Audio("audio/wav"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Sniffed::Image("image/png"));
        assert_eq!(sniff(b"\xef\xbb\xbf\n  <!DOCTYPE html><html>"), Sniffed::Html);
        assert_eq!(sniff(b"<html lang=en>"), Sniffed::Html);
        assert_eq!(sniff(b"{\"error\": \"not found\"}"), Sniffed::Other);
        assert_eq!(sniff(b""), Sniffed::Other);
        assert!(Sniffed::Html.refusal().unwrap().contains("upload the file"));
        assert!(Sniffed::Video("video/mp4").refusal().is_none());
    }

    #[test]
    fn platform_pages_are_recognised() {
        let page = |u: &str| platform_page(&url::Url::parse(u).unwrap());
        assert_eq!(page("https://www.tiktok.com/@someone/video/7301234567890"), Some("TikTok"));
        assert_eq!(page("https://vm.tiktok.com/ZMabc/"), Some("TikTok"));
        assert_eq!(page("https://www.youtube.com/watch?v=dQw4w9WgXcQ"), Some("YouTube"));
        assert_eq!(page("https://youtu.be/dQw4w9WgXcQ"), Some("YouTube"));
        assert_eq!(page("https://m.youtube.com/shorts/abc"), Some("YouTube"));
        assert_eq!(page("https://www.instagram.com/reel/Cxyz/"), Some("Instagram"));
        assert_eq!(page("https://x.com/someone/status/1"), Some("X"));
        assert_eq!(page("https://cdn.example.com/clips/a.mp4"), None);
        assert_eq!(page("https://notyoutube.com/v.mp4"), None);
    }
}
