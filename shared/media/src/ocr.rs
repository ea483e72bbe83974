//! On-screen text: the sampled frames (`look`), scaled so the long side is 1280 px, each read
//! twice by tesseract (sparse text, one thread each, both at once): binarised for light, colourless ink (white
//! outlined captions) and as plain grey (dark text on a light box); the better reading wins.
//! Only confident, word-like tokens are kept: OCR of video frames is noisy, and invented
//! words would be worse than none.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Result, Tools};

/// tesseract's confidence (0–100) a word needs.
const MIN_CONFIDENCE: f64 = 60.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScreenText {
    pub t_s: f64,
    pub text: String,
}

impl Tools {
    /// Whether on-screen text can be read here.
    pub fn reads_text(&self) -> bool {
        self.tesseract.is_some()
    }

    /// The text of sampled frames (`(t_s, ink, plain)`: the two binarisations of one frame),
    /// one entry per caption; None without tesseract.
    pub(crate) async fn read_text(&self, frames: &[(f64, PathBuf, PathBuf)]) -> Result<Option<Vec<ScreenText>>> {
        let Some(tesseract) = self.tesseract.clone() else { return Ok(None) };
        let mut read = Vec::new();
        for (t, ink, plain) in frames {
            // Both readings at once: one tesseract per core.
            let (a, b) = tokio::join!(self.read_frame(&tesseract, ink), self.read_frame(&tesseract, plain));
            let (a, b) = (a?, b?);
            read.push((*t, if score(&b) > score(&a) { b } else { a }));
        }
        Ok(Some(consolidate(read)))
    }

    async fn read_frame(&self, tesseract: &Path, frame: &Path) -> Result<Reading> {
        let args: Vec<std::ffi::OsString> = vec![frame.into(), "-".into(), "--psm".into(), "11".into(), "tsv".into()];
        let tsv = self.run("tesseract", tesseract, &args).await?;
        Ok(confident_words(&String::from_utf8_lossy(&tsv)))
    }
}

/// The ffmpeg filter branch making both readings of each frame from `[input]`, scaled so the
/// long side is 1280 px. Outlined captions: ink is bright and colourless, and such pixels
/// become black on white, so a bright coloured background does not merge with the letters
/// (`[ink]`). Boxed captions (dark on a light box): the plain grey frame, which tesseract
/// thresholds itself (`[plain]`).
pub(crate) fn readings_graph(input: &str) -> String {
    let ink = "if(gt(lum(X\\,Y)\\,215)*lt(abs(cb(X\\,Y)-128)\\,12)*lt(abs(cr(X\\,Y)-128)\\,12)\\,0\\,255)";
    format!(
        "{input}scale='if(gt(iw\\,ih)\\,1280\\,-2)':'if(gt(iw\\,ih)\\,-2\\,1280)',split[a][b];\
         [a]format=yuv444p,geq=lum='{ink}':cb=128:cr=128,format=gray[ink];[b]format=gray[plain]"
    )
}

/// One frame's text and how sure tesseract was of it (mean word confidence).
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    text: String,
    confidence: f64,
}

/// Letter pairs of a text, for telling whether two readings are of the same caption.
fn bigrams(text: &str) -> std::collections::HashSet<(char, char)> {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect();
    letters.windows(2).map(|w| (w[0], w[1])).collect()
}

fn same_caption(a: &str, b: &str) -> bool {
    let (a, b) = (bigrams(a), bigrams(b));
    let union = a.union(&b).count();
    union > 0 && a.intersection(&b).count() * 2 >= union
}

/// How much a reading says: its confidence times its letters and digits.
fn score(r: &Reading) -> f64 {
    r.confidence * r.text.chars().filter(|c| c.is_alphanumeric()).count() as f64
}

/// Frames that show the same caption are one entry, at its first time, in the reading
/// tesseract was surest of (a caption over a busy background reads differently frame to frame).
fn consolidate(read: Vec<(f64, Reading)>) -> Vec<ScreenText> {
    let mut out: Vec<(ScreenText, f64)> = Vec::new();
    for (t_s, r) in read.into_iter().filter(|(_, r)| !r.text.is_empty()) {
        match out.last_mut() {
            Some((last, best)) if same_caption(&last.text, &r.text) => {
                if score(&r) > *best {
                    *best = score(&r);
                    last.text = r.text;
                }
            }
            _ => {
                let best = score(&r);
                out.push((ScreenText { t_s, text: r.text }, best));
            }
        }
    }
    out.into_iter().map(|(s, _)| s).collect()
}

/// The words of tesseract's TSV it is sure of and that look like words, in reading order.
fn confident_words(tsv: &str) -> Reading {
    let (mut words, mut confidence) = (Vec::new(), 0.0);
    for line in tsv.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 12 {
            continue;
        }
        let conf: f64 = cols[10].parse().unwrap_or(-1.0);
        let word = cols[11].trim().trim_matches(|c: char| !c.is_alphanumeric());
        let letters = word.chars().filter(|c| c.is_alphabetic()).count();
        let wordlike = word.chars().count() >= 2
            && letters * 2 >= word.chars().count()
            && word.chars().all(|c| c.is_alphanumeric() || "'’-".contains(c));
        if conf >= MIN_CONFIDENCE && wordlike {
            words.push(word.to_string());
            confidence += conf;
        }
    }
    let confidence = if words.is_empty() { 0.0 } else { confidence / words.len() as f64 };
    Reading { text: words.join(" "), confidence }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_confident_wordlike_tokens_are_kept() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t95.1\tSTOP\n\
                   5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t91.0\tSCROLLING!\n\
                   5\t1\t2\t1\t1\t1\t0\t0\t10\t10\t40.0\tnoise\n\
                   5\t1\t3\t1\t1\t1\t0\t0\t10\t10\t88.0\t|~\n";
        let r = confident_words(tsv);
        assert_eq!(r.text, "STOP SCROLLING");
        assert!((r.confidence - 93.05).abs() < 0.01);
    }

    #[test]
    fn one_caption_over_several_frames_is_one_entry_in_its_best_reading() {
        let r = |text: &str, confidence| Reading { text: text.into(), confidence };
        let read =
            vec![(0.5, r("STOP LLING", 70.0)), (1.5, r("STOP SCROLLING", 90.0)), (2.5, r("", 0.0)), (5.0, r("FOLLOW FOR PART TWO", 80.0))];
        assert_eq!(
            consolidate(read),
            [ScreenText { t_s: 0.5, text: "STOP SCROLLING".into() }, ScreenText { t_s: 5.0, text: "FOLLOW FOR PART TWO".into() }]
        );
    }
}
