//! `goviral score` and `goviral compare` as a batch user runs them: JSON lines in, JSON lines
//! out in order, bad lines answered in place, exit status 2 when any line was bad.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], input: &str) -> (i32, Vec<serde_json::Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_goviral"))
        .args(args)
        .env("GOVIRAL_DATA_DIR", "/nonexistent/never-created")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.code().unwrap(), lines)
}

#[test]
fn score_answers_every_line_in_order() {
    let input = [
        r#"{"content_type":"text","caption":"5 mistakes everyone makes with sourdough","platform_hint":"tiktok"}"#,
        r#"{"caption": "#,
        r#"{"content_type":"text","caption":"Sourdough","platform_hint":"myspace"}"#,
        "",
        r#"{"content_type":"text","caption":"5 mistakes everyone makes with sourdough","platform_hint":"tiktok"}"#,
    ]
    .join("\n");
    let (code, lines) = run(&["score"], &input);
    assert_eq!(code, 2, "a bad line makes the exit status 2");
    assert_eq!(lines.len(), 4, "blank lines are skipped, every other line answered");
    let first = &lines[0];
    assert!((0.0..=100.0).contains(&first["score"].as_f64().unwrap()));
    assert_eq!(first["insights"].as_array().unwrap().len(), 5);
    assert!(first["insights"][0]["message"].as_str().unwrap().contains("5 mistakes everyone makes with sourdough"));
    assert_eq!((lines[1]["line"].as_u64(), lines[1]["error"]["code"].as_str()), (Some(2), Some("invalid_input")));
    assert!(lines[2]["error"]["message"].as_str().unwrap().contains("platform_hint"), "{}", lines[2]);
    assert_eq!(lines[3], lines[0], "same input, same output");
    assert!(!std::path::Path::new("/nonexistent/never-created").exists());
}

#[test]
fn compare_ranks_variants_and_says_why() {
    let input = [
        r#"{"variants":["Dad gives a speech","Here's why 3 million people watched this dad's 2-minute speech"],"platform_hint":"youtube"}"#,
        r#"{"variants":["only one"]}"#,
    ]
    .join("\n");
    let (code, lines) = run(&["compare"], &input);
    assert_eq!(code, 2);
    let ranking = lines[0]["ranking"].as_array().unwrap();
    assert_eq!((ranking[0]["index"].as_u64(), ranking[0]["rank"].as_u64()), (Some(1), Some(1)));
    assert!(ranking[0]["p_beats_next"].as_f64().unwrap() > 0.5);
    assert!(!ranking[0]["reasons"].as_array().unwrap().is_empty());
    assert_eq!(lines[0]["pairwise"].as_array().unwrap().len(), 2);
    assert!(lines[1]["error"]["message"].as_str().unwrap().contains("between 2 and 10 variants"), "{}", lines[1]);
}
