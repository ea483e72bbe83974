//! `goviral score` and `goviral compare`: JSON lines in, one JSON line out per input, in order.
//! A bad line gets `{"line", "error": {code, message}}` in its place; the exit status is 2 if
//! any line was bad.

use std::io::{BufRead, Write};

use domain::model::Platform;
use goviral_scoring::Model;
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_TEXT_CHARS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreLine {
    #[serde(default)]
    content_type: Option<String>,
    caption: Option<String>,
    #[serde(default)]
    transcript: Option<String>,
    #[serde(default)]
    platform_hint: Option<String>,
    // Accepted so analyze requests can be piped in unchanged.
    #[serde(default)]
    user_id: Option<Value>,
    #[serde(default)]
    source_url: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareLine {
    variants: Vec<String>,
    #[serde(default)]
    platform_hint: Option<String>,
}

fn platform(hint: Option<&str>) -> Result<Option<Platform>, String> {
    hint.map(|h| h.parse::<Platform>().map_err(|_| format!("platform_hint must be one of tiktok, youtube, instagram, x (got {h:?})")))
        .transpose()
}

fn checked_text(text: &str, what: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!("{what} is longer than {MAX_TEXT_CHARS} characters"));
    }
    Ok(())
}

fn score_line(model: &Model, line: &str) -> Result<Value, String> {
    let input: ScoreLine = serde_json::from_str(line).map_err(|e| format!("not a score request: {e}"))?;
    let _ = (&input.user_id, &input.source_url);
    if let Some(t) = input.content_type.as_deref() {
        if !matches!(t, "text" | "post" | "video") {
            return Err(format!("content_type must be text, post or video (got {t:?})"));
        }
    }
    let text = match (input.caption.as_deref(), input.transcript.as_deref()) {
        (Some(c), Some(t)) => format!("{c}\n{t}"),
        (Some(c), None) => c.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => return Err("a caption (or transcript) is required".into()),
    };
    checked_text(&text, "the caption")?;
    let scored = goviral_scoring::score(model, &text, platform(input.platform_hint.as_deref())?);
    Ok(json!({
        "score": scored.score,
        "confidence": scored.confidence,
        "sub_scores": scored.sub_scores,
        "insights": scored.insights,
        "drivers": scored.drivers,
        "rewrites": scored.rewrites,
        "model": model.header.name,
    }))
}

fn compare_line(model: &Model, line: &str) -> Result<Value, String> {
    let input: CompareLine = serde_json::from_str(line).map_err(|e| format!("not a compare request: {e}"))?;
    // The hint is checked like everywhere else, though the ranking does not depend on it.
    let platform_hint = platform(input.platform_hint.as_deref())?;
    // The API's rules, word for word.
    let input = domain::service::CompareInput { variants: input.variants, platform_hint };
    domain::service::validate_compare(&input).map_err(|e| match e {
        domain::Error::Validation(fields) => fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    })?;
    Ok(serde_json::to_value(goviral_scoring::compare(model, &input.variants)).expect("a ranking serialises"))
}

/// Streams stdin to stdout; returns whether every line was valid.
pub fn run(compare: bool) -> std::io::Result<bool> {
    let model = Model::embedded();
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut all_ok = true;
    for (n, line) in stdin.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let result = if compare { compare_line(model, &line) } else { score_line(model, &line) };
        let value = result.unwrap_or_else(|message| {
            all_ok = false;
            json!({"line": n + 1, "error": {"code": "invalid_input", "message": message}})
        });
        serde_json::to_writer(&mut out, &value)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(all_ok)
}
