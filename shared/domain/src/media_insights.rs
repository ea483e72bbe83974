//! What the measurements of a video say a creator should change: rules over `metrics.media`
//! that quote the measured numbers, name a concrete fix and where in the video it applies.
//! They are heuristics from platform guidance, not learned from outcomes: each finding says
//! so (`basis`), and none of them moves the score.

use serde::Serialize;
use serde_json::Value;

use crate::model::{Insight, InsightCategory, Platform};

/// The most recommendations an insight carries.
const MAX_RECOMMENDATIONS: usize = 6;

pub const BASIS: &str = "heuristic: platform guidance, not learned from outcomes";

/// Loudness platforms normalise playback to (LUFS).
const PLATFORM_LUFS: f64 = -14.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub category: InsightCategory,
    /// Which rule fired (stable, for clients).
    pub rule: &'static str,
    /// What was measured, with the number.
    pub message: String,
    /// The change to make.
    pub fix: String,
    /// Where it applies: seconds from the start (a span when `until_s` is set).
    pub at_s: f64,
    pub until_s: Option<f64>,
    pub basis: &'static str,
}

/// `62.4` → `1:02.4`.
fn clock(s: f64) -> String {
    let s = s.max(0.0);
    let minutes = (s / 60.0).floor();
    format!("{}:{:04.1}", minutes as u64, s - minutes * 60.0)
}

/// Short-form platforms (and unknown ones, most of what is sent) against long-form YouTube.
fn short_form(platform: Option<Platform>) -> bool {
    !matches!(platform, Some(Platform::Youtube))
}

/// The findings for one video's `metrics.media`; empty when it was not measured.
pub fn findings(media: &Value, platform: Option<Platform>) -> Vec<Finding> {
    let Some(duration) = media["duration_s"].as_f64().filter(|d| *d > 0.0) else { return Vec::new() };
    let mut c = Collect { out: Vec::new(), duration };

    // Hook: the first seconds decide whether anyone stays.
    let speech_onset = media["audio"]["speech_onset_s"].as_f64();
    let words = media["speech"]["words"].as_u64().unwrap_or(0);
    if let Some(onset) = speech_onset.filter(|o| *o > 1.0 && words > 0) {
        c.add(
            InsightCategory::Hook,
            "late_first_words",
            format!("First words at {onset:.1} s; short-form viewers decide whether to stay in about 1 s."),
            format!("Cut the silent opening ({}–{}) or start speaking on the first frame.", clock(0.0), clock(onset)),
            0.0,
            Some(onset),
        );
    }
    let motion = media["hook"]["motion"].as_f64();
    let cut_in_hook = media["hook"]["cut_in_hook"].as_bool().unwrap_or(false);
    if motion.is_some_and(|m| m < 0.3) && !cut_in_hook {
        let hook = media["hook"]["seconds"].as_f64().unwrap_or(3.0).min(duration);
        c.add(
            InsightCategory::Hook,
            "static_opening",
            format!("Almost nothing moves in the first {hook:.0} s (motion {:.2}) and there is no cut.", motion.unwrap_or(0.0)),
            format!("Open on movement: a cut, a zoom or a gesture within {}–{}.", clock(0.0), clock(hook)),
            0.0,
            Some(hook),
        );
    }

    // Read on screen (only where text was looked for): most feeds start muted.
    if media["hook"]["on_screen_text"].as_str().is_some_and(|t| t.trim().is_empty()) {
        let hook = media["hook"]["seconds"].as_f64().unwrap_or(3.0).min(duration);
        c.add(
            InsightCategory::Hook,
            "no_text_in_hook",
            format!("No text on screen in the first {hook:.0} s; many viewers start with the sound off."),
            format!("Burn in a 3–6 word caption over {}–{} that states the payoff.", clock(0.0), clock(hook)),
            0.0,
            Some(hook),
        );
    }

    // A person on screen: faces hold attention in a feed (only where faces were looked for).
    if media["faces"]["in_hook"].as_bool() == Some(false) {
        let hook = media["hook"]["seconds"].as_f64().unwrap_or(3.0).min(duration);
        match media["faces"]["first_face_s"].as_f64() {
            Some(first) => c.add(
                InsightCategory::Hook,
                "face_after_hook",
                format!("The first face appears at {first:.1} s, after the first {hook:.0} s; a face on screen holds viewers early."),
                format!("Open on the shot with the face (it appears at {}), or move it before {}.", clock(first), clock(hook)),
                0.0,
                Some(first),
            ),
            // Spoken but faceless: a voice over pictures only, where showing the speaker helps.
            None if words > 0 => c.add(
                InsightCategory::Hook,
                "no_face",
                "Someone speaks but no face is seen in the video; viewers connect with a person more than with a voice.".into(),
                format!("Show the speaker on camera for the opening line ({}–{}).", clock(0.0), clock(hook)),
                0.0,
                Some(hook),
            ),
            None => {}
        }
    }

    // Pacing: shot length, speaking rate, dead air.
    let cuts: Vec<f64> = media["scenes"]["cuts_s"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    let per_minute = media["scenes"]["cuts_per_minute"].as_f64().unwrap_or(0.0);
    let (low, high) = if short_form(platform) { (12.0, 30.0) } else { (4.0, 15.0) };
    if duration >= 10.0 && per_minute < low {
        let mut bounds = vec![0.0];
        bounds.extend(&cuts);
        bounds.push(duration);
        let (start, end) =
            bounds.windows(2).map(|w| (w[0], w[1])).fold((0.0, 0.0), |best, s| if s.1 - s.0 > best.1 - best.0 { s } else { best });
        c.add(
            InsightCategory::Pacing,
            "slow_cutting",
            format!(
                "{per_minute:.0} cuts per minute, against {low:.0}–{high:.0} for this format (a new shot every {:.0}–{:.0} s).",
                60.0 / high,
                60.0 / low
            ),
            format!("Split the longest shot ({}–{}, {:.0} s) into two or three.", clock(start), clock(end), end - start),
            start,
            Some(end),
        );
    }
    if let Some(wpm) = media["speech"]["words_per_minute"].as_f64() {
        if wpm > 190.0 {
            c.whole(
                InsightCategory::Pacing,
                "fast_speech",
                format!("Speech at {wpm:.0} words per minute, above the 140–180 most viewers follow comfortably."),
                "Slow down or cut words; add on-screen captions for the dense parts.".into(),
            );
        } else if wpm < 110.0 && words >= 10 {
            c.whole(
                InsightCategory::Pacing,
                "slow_speech",
                format!("Speech at {wpm:.0} words per minute, below the 140–180 that keeps short videos moving."),
                "Tighten the pauses between sentences, or speed the voice track up by 10–15%.".into(),
            );
        }
    }
    if let Some(silence) = media["audio"]["silence_ratio"].as_f64().filter(|s| *s > 0.3) {
        c.whole(
            InsightCategory::Pacing,
            "dead_air",
            format!("{:.0}% of the video is silent.", silence * 100.0),
            "Trim the pauses, or lay music or ambient sound under them.".into(),
        );
    }
    if let Some(black) = media["scenes"]["black_ratio"].as_f64().filter(|b| *b > 0.05) {
        c.whole(
            InsightCategory::Pacing,
            "black_frames",
            format!("{:.0}% of the video is black frames.", black * 100.0),
            "Remove the black stretches; a viewer reads them as the video being over.".into(),
        );
    }

    // Emotion: sound energy.
    if let Some(lufs) = media["audio"]["loudness_lufs"].as_f64() {
        if lufs < -20.0 {
            c.whole(
                InsightCategory::Emotion,
                "quiet_mix",
                format!(
                    "{lufs:.0} LUFS: quieter than the {PLATFORM_LUFS:.0} LUFS platforms normalise to, so it plays flat next to other videos."
                ),
                format!(
                    "Raise the mix by about {:.0} dB (normalise to −14 LUFS with the true peak at or under −1 dBTP).",
                    PLATFORM_LUFS - lufs
                ),
            );
        } else if lufs > -9.0 {
            c.whole(
                InsightCategory::Emotion,
                "loud_mix",
                format!(
                    "{lufs:.0} LUFS: louder than the {PLATFORM_LUFS:.0} LUFS platforms normalise to; they will turn it down and it may distort."
                ),
                "Lower the mix to about −14 LUFS and leave headroom.".into(),
            );
        }
    }
    if let Some(peak) = media["audio"]["true_peak_dbtp"].as_f64().filter(|p| *p > -1.0) {
        c.whole(
            InsightCategory::Emotion,
            "clipping_risk",
            format!("True peak {peak:+.1} dBTP: above −1 dBTP, so the platform's encoder may clip it."),
            "Apply a limiter at −1 dBTP.".into(),
        );
    }

    // Storytelling: a video nobody speaks in and nothing is written on tells its story by
    // pictures alone.
    let has_audio = media["has_audio"].as_bool().unwrap_or(false);
    if !has_audio {
        c.whole(
            InsightCategory::Storytelling,
            "no_sound",
            "The video has no sound track; most feeds autoplay with sound for those who have it on.".into(),
            "Add a voice-over or music; a trending sound also helps discovery.".into(),
        );
    }

    // Call to action: asked for out loud near the end?
    let segments = media["speech"]["segments"].as_array().cloned().unwrap_or_default();
    if words > 0 {
        let tail_from = (duration - 5.0).max(0.0);
        let asks = ["follow", "subscribe", "comment", "share", "like", "link", "save", "tag", "click", "sign up", "download", "join"];
        let asked = segments.iter().filter(|s| s["end_s"].as_f64().unwrap_or(0.0) >= tail_from).any(|s| {
            let text = s["text"].as_str().unwrap_or_default().to_lowercase();
            asks.iter().any(|a| text.split(|c: char| !c.is_alphanumeric() && c != ' ').any(|w| w.contains(a)))
        });
        if !asked {
            c.add(
                InsightCategory::Cta,
                "no_spoken_ask",
                "Nothing in the last 5 s asks the viewer to do anything.".into(),
                format!("Say one ask before the end (around {}): follow for part 2, comment, or save.", clock((duration - 3.0).max(0.0))),
                (duration - 3.0).max(0.0),
                Some(duration),
            );
        }
    }
    c.out
}

/// Findings as they are found, for a video of `duration` seconds.
struct Collect {
    out: Vec<Finding>,
    duration: f64,
}

impl Collect {
    fn add(&mut self, category: InsightCategory, rule: &'static str, message: String, fix: String, at_s: f64, until_s: Option<f64>) {
        self.out.push(Finding { category, rule, message, fix, at_s, until_s, basis: BASIS });
    }

    /// A finding about the whole video.
    fn whole(&mut self, category: InsightCategory, rule: &'static str, message: String, fix: String) {
        let duration = self.duration;
        self.add(category, rule, message, fix, 0.0, Some(duration));
    }
}

/// The scorer's insights with the findings of the same category folded in: the measured
/// observation joins the message, and its fix comes first (it names where in the video).
pub fn merge(mut insights: Vec<Insight>, findings: &[Finding]) -> Vec<Insight> {
    for insight in &mut insights {
        let mine: Vec<&Finding> = findings.iter().filter(|f| f.category == insight.category).collect();
        if mine.is_empty() {
            continue;
        }
        for f in &mine {
            insight.message.push(' ');
            insight.message.push_str(&f.message);
        }
        let mut recommendations: Vec<String> = mine.iter().map(|f| f.fix.clone()).collect();
        recommendations.append(&mut insight.recommendations);
        recommendations.truncate(MAX_RECOMMENDATIONS);
        insight.recommendations = recommendations;
    }
    insights
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(media: &Value) -> Vec<&'static str> {
        findings(media, None).iter().map(|f| f.rule).collect()
    }

    #[test]
    fn a_slow_quiet_late_start_is_told_with_its_numbers() {
        let media = json!({
            "duration_s": 60.0, "has_audio": true,
            "scenes": {"cuts_s": [8.0, 40.0], "cuts_per_minute": 2.0, "black_ratio": 0.0},
            "audio": {"loudness_lufs": -28.0, "true_peak_dbtp": -6.0, "silence_ratio": 0.1, "speech_onset_s": 2.4},
            "speech": {"words": 150, "words_per_minute": 160.0, "segments": [{"start_s": 2.4, "end_s": 58.0, "text": "and that is all"}]},
            "hook": {"seconds": 3.0, "motion": 2.1, "cut_in_hook": false},
        });
        let found = findings(&media, None);
        assert_eq!(rules(&media), ["late_first_words", "slow_cutting", "quiet_mix", "no_spoken_ask"]);
        assert!(found[0].message.contains("2.4 s") && found[0].fix.contains("0:00.0–0:02.4"), "{:?}", found[0]);
        assert!(found[1].fix.contains("0:08.0–0:40.0") && found[1].message.contains("12–30"), "{:?}", found[1]);
        assert!(found[2].message.contains("-28 LUFS") && found[2].fix.contains("14 dB"), "{:?}", found[2]);
        assert!(found.iter().all(|f| f.basis == BASIS));
    }

    #[test]
    fn a_face_late_or_never_is_told_only_where_faces_were_looked_for() {
        let base = json!({"duration_s": 20.0, "has_audio": true, "speech": {"words": 40, "words_per_minute": 150.0,
            "segments": [{"start_s": 17.0, "end_s": 19.0, "text": "follow for more"}]}, "scenes": {"cuts_per_minute": 20.0}});
        let with = |faces: Value| {
            let mut m = base.clone();
            m["faces"] = faces;
            m
        };
        let late = findings(&with(json!({"in_hook": false, "first_face_s": 5.0})), None);
        assert_eq!(late.iter().map(|f| f.rule).collect::<Vec<_>>(), ["face_after_hook"]);
        assert!(late[0].message.contains("5.0 s") && late[0].fix.contains("0:05.0") && late[0].until_s == Some(5.0), "{:?}", late[0]);
        assert_eq!(rules(&with(json!({"in_hook": false, "first_face_s": null}))), ["no_face"]);
        assert!(rules(&with(json!({"in_hook": true, "first_face_s": 0.5}))).is_empty());
        // Not looked for (no detector installed): nothing is claimed.
        assert!(rules(&with(Value::Null)).is_empty());
    }

    #[test]
    fn findings_join_the_insight_of_their_category() {
        let insight =
            |category| Insight { category, message: "Text says so.".into(), recommendations: vec!["Edit the text.".into()], weight: 0.2 };
        let media = json!({"duration_s": 20.0, "has_audio": true, "audio": {"loudness_lufs": -30.0}, "scenes": {"cuts_per_minute": 20.0}});
        let merged = merge(vec![insight(InsightCategory::Hook), insight(InsightCategory::Emotion)], &findings(&media, None));
        assert_eq!(merged[0].message, "Text says so.");
        assert!(merged[1].message.starts_with("Text says so. -30 LUFS"), "{}", merged[1].message);
        assert!(merged[1].recommendations[0].contains("16 dB") && merged[1].recommendations[1] == "Edit the text.");
    }

    #[test]
    fn a_well_made_video_gets_no_advice_and_unmeasured_media_none() {
        let media = json!({
            "duration_s": 30.0, "has_audio": true, "faces": {"in_hook": true, "first_face_s": 0.5},
            "scenes": {"cuts_s": [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0], "cuts_per_minute": 20.0, "black_ratio": 0.0},
            "audio": {"loudness_lufs": -14.5, "true_peak_dbtp": -1.5, "silence_ratio": 0.05, "speech_onset_s": 0.2},
            "speech": {"words": 80, "words_per_minute": 165.0, "segments": [{"start_s": 26.0, "end_s": 29.5, "text": "Follow for part two!"}]},
            "hook": {"seconds": 3.0, "motion": 3.0, "cut_in_hook": true},
        });
        assert!(rules(&media).is_empty(), "{:?}", rules(&media));
        assert!(findings(&json!({"unavailable": "no ffmpeg"}), None).is_empty());
        assert!(findings(&Value::Null, None).is_empty());
    }
}
