//! The subset of the Amazon States Language the pipeline uses, parsed from infra/ and executed
//! locally: Task (with Retry, Catch, ResultPath, TimeoutSeconds), Choice (BooleanEquals,
//! StringEquals), Pass (Result, ResultPath), Succeed and Fail. Anything else is refused at
//! parse time, so the local runner can never silently differ from Step Functions.

use std::collections::HashMap;
use std::time::Duration;

use domain::pipeline::Stage;
use serde_json::Value;

/// The pipeline's definition, embedded so the binary needs no files at run time.
pub const PIPELINE_ASL: &str = include_str!("../../../infra/pipeline.asl.json");

#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Next(String),
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_secs: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_secs: Option<f64>,
    pub full_jitter: bool,
}

impl Retrier {
    /// The wait before retry number `attempt + 1` (attempt counts retries already made);
    /// `jitter` in [0, 1) picks the point in the window when jitter is FULL.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let mut secs = self.interval_secs * self.backoff_rate.powi(attempt as i32);
        if let Some(max) = self.max_delay_secs {
            secs = secs.min(max);
        }
        if self.full_jitter {
            secs *= jitter;
        }
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub result_path: Option<String>,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    BooleanEquals(bool),
    StringEquals(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    pub variable: String,
    pub test: Test,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Task {
        stage: Stage,
        result_path: Option<String>,
        timeout: Option<Duration>,
        retry: Vec<Retrier>,
        catch: Vec<Catcher>,
        then: Transition,
    },
    Choice {
        choices: Vec<ChoiceRule>,
        default: Option<String>,
    },
    Pass {
        result: Option<Value>,
        result_path: Option<String>,
        then: Transition,
    },
    Succeed,
    Fail {
        error: String,
        cause: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub start_at: String,
    pub states: HashMap<String, State>,
}

/// Does an error named `error` match this ErrorEquals list?
pub fn matches(error_equals: &[String], error: &str) -> bool {
    error_equals.iter().any(|e| e == error || e == "States.ALL" || (e == "States.TaskFailed" && error != "States.Timeout"))
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or(format!("{what} must be an array"))?
        .iter()
        .map(|s| s.as_str().map(String::from).ok_or(format!("{what} must hold strings")))
        .collect()
}

fn transition(s: &serde_json::Map<String, Value>, name: &str) -> Result<Transition, String> {
    match (s.get("Next").and_then(Value::as_str), s.get("End").and_then(Value::as_bool)) {
        (Some(next), None) => Ok(Transition::Next(next.into())),
        (None, Some(true)) => Ok(Transition::End),
        _ => Err(format!("state {name}: exactly one of Next or End: true")),
    }
}

fn result_path(s: &serde_json::Map<String, Value>) -> Option<String> {
    s.get("ResultPath").and_then(Value::as_str).map(String::from)
}

const KNOWN_FIELDS: &[&str] = &[
    "Type",
    "Comment",
    "Resource",
    "Parameters",
    "ResultPath",
    "TimeoutSeconds",
    "Retry",
    "Catch",
    "Next",
    "End",
    "Choices",
    "Default",
    "Result",
    "Error",
    "Cause",
];

impl StateMachine {
    pub fn pipeline() -> StateMachine {
        StateMachine::parse(PIPELINE_ASL).expect("infra/pipeline.asl.json is valid (checked by tests)")
    }

    pub fn parse(text: &str) -> Result<StateMachine, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let start_at = doc["StartAt"].as_str().ok_or("StartAt missing")?.to_string();
        let mut states = HashMap::new();
        for (name, s) in doc["States"].as_object().ok_or("States missing")? {
            let s = s.as_object().ok_or(format!("state {name} is not an object"))?;
            if let Some(unknown) = s.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
                return Err(format!("state {name}: field {unknown} is not supported locally"));
            }
            let state = match s.get("Type").and_then(Value::as_str) {
                Some("Task") => {
                    let stage = s
                        .get("Parameters")
                        .and_then(|p| p["MessageBody"]["stage"].as_str())
                        .ok_or(format!("task {name}: Parameters.MessageBody.stage missing"))?;
                    let stage = Stage::parse(stage).ok_or(format!("task {name}: unknown stage {stage}"))?;
                    let retry = s.get("Retry").map_or(Ok(Vec::new()), |r| {
                        r.as_array()
                            .ok_or("Retry must be an array".to_string())?
                            .iter()
                            .map(|r| {
                                Ok(Retrier {
                                    error_equals: strings(&r["ErrorEquals"], "ErrorEquals")?,
                                    interval_secs: r["IntervalSeconds"].as_f64().unwrap_or(1.0),
                                    max_attempts: r["MaxAttempts"].as_u64().unwrap_or(3) as u32,
                                    backoff_rate: r["BackoffRate"].as_f64().unwrap_or(2.0),
                                    max_delay_secs: r["MaxDelaySeconds"].as_f64(),
                                    full_jitter: match r["JitterStrategy"].as_str() {
                                        None | Some("NONE") => false,
                                        Some("FULL") => true,
                                        Some(other) => return Err(format!("JitterStrategy {other} unknown")),
                                    },
                                })
                            })
                            .collect::<Result<Vec<_>, String>>()
                    })?;
                    let catch = s.get("Catch").map_or(Ok(Vec::new()), |c| {
                        c.as_array()
                            .ok_or("Catch must be an array".to_string())?
                            .iter()
                            .map(|c| {
                                Ok(Catcher {
                                    error_equals: strings(&c["ErrorEquals"], "ErrorEquals")?,
                                    result_path: c["ResultPath"].as_str().map(String::from),
                                    next: c["Next"].as_str().ok_or("Catch needs Next")?.to_string(),
                                })
                            })
                            .collect::<Result<Vec<_>, String>>()
                    })?;
                    let timeout = s.get("TimeoutSeconds").and_then(Value::as_u64).map(Duration::from_secs);
                    State::Task { stage, result_path: result_path(s), timeout, retry, catch, then: transition(s, name)? }
                }
                Some("Choice") => {
                    let choices = s
                        .get("Choices")
                        .and_then(Value::as_array)
                        .ok_or(format!("choice {name}: Choices missing"))?
                        .iter()
                        .map(|c| {
                            let test = if let Some(b) = c.get("BooleanEquals").and_then(Value::as_bool) {
                                Test::BooleanEquals(b)
                            } else if let Some(s) = c.get("StringEquals").and_then(Value::as_str) {
                                Test::StringEquals(s.into())
                            } else {
                                return Err(format!("choice {name}: only BooleanEquals and StringEquals are supported"));
                            };
                            Ok(ChoiceRule {
                                variable: c["Variable"].as_str().ok_or("Variable missing")?.into(),
                                test,
                                next: c["Next"].as_str().ok_or("Next missing")?.into(),
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    State::Choice { choices, default: s.get("Default").and_then(Value::as_str).map(String::from) }
                }
                Some("Pass") => State::Pass { result: s.get("Result").cloned(), result_path: result_path(s), then: transition(s, name)? },
                Some("Succeed") => State::Succeed,
                Some("Fail") => State::Fail {
                    error: s.get("Error").and_then(Value::as_str).unwrap_or("States.Fail").into(),
                    cause: s.get("Cause").and_then(Value::as_str).unwrap_or_default().into(),
                },
                other => return Err(format!("state {name}: type {other:?} is not supported locally")),
            };
            states.insert(name.clone(), state);
        }
        let machine = StateMachine { start_at, states };
        machine.check_targets()?;
        Ok(machine)
    }

    fn check_targets(&self) -> Result<(), String> {
        let exists = |n: &str| if self.states.contains_key(n) { Ok(()) } else { Err(format!("no state named {n}")) };
        exists(&self.start_at)?;
        for state in self.states.values() {
            match state {
                State::Task { then, catch, .. } => {
                    if let Transition::Next(n) = then {
                        exists(n)?;
                    }
                    catch.iter().try_for_each(|c| exists(&c.next))?;
                }
                State::Pass { then: Transition::Next(n), .. } => exists(n)?,
                State::Choice { choices, default } => {
                    choices.iter().try_for_each(|c| exists(&c.next))?;
                    default.iter().try_for_each(|d| exists(d))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The retry policy of the state that runs `stage`.
    pub fn task_retry(&self, stage: Stage) -> Option<&Retrier> {
        self.states.values().find_map(|s| match s {
            State::Task { stage: st, retry, .. } if *st == stage => retry.first(),
            _ => None,
        })
    }
}

fn path_segments(path: &str) -> Result<Vec<&str>, String> {
    match path {
        "$" => Ok(Vec::new()),
        p if p.starts_with("$.") => Ok(p[2..].split('.').collect()),
        p => Err(format!("unsupported path {p}")),
    }
}

/// Reads `path` (`$` or `$.a.b`) from `data`.
pub fn read_path<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path_segments(path).ok()?.iter().try_fold(data, |v, seg| v.get(seg))
}

/// Applies a ResultPath: `$` replaces the document, `$.a.b` sets that field (creating
/// objects on the way), no ResultPath at all means `$`.
pub fn write_path(data: &mut Value, path: Option<&str>, result: Value) -> Result<(), String> {
    let segments = path_segments(path.unwrap_or("$"))?;
    let Some((last, parents)) = segments.split_last() else {
        *data = result;
        return Ok(());
    };
    let mut target = data;
    for seg in parents {
        if !target.get(seg).is_some_and(Value::is_object) {
            target[*seg] = Value::Object(Default::default());
        }
        target = &mut target[*seg];
    }
    if !target.is_object() {
        return Err("ResultPath points into a non-object".into());
    }
    target[*last] = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_and_write() {
        let mut d = json!({"job_id": "x"});
        write_path(&mut d, Some("$.moderation"), json!({"flagged": false})).unwrap();
        write_path(&mut d, Some("$.a.b"), json!(1)).unwrap();
        assert_eq!(read_path(&d, "$.moderation.flagged"), Some(&json!(false)));
        assert_eq!(read_path(&d, "$.a.b"), Some(&json!(1)));
        write_path(&mut d, None, json!({"new": true})).unwrap();
        assert_eq!(d, json!({"new": true}));
    }

    #[test]
    fn errors_match_like_step_functions() {
        let all = vec!["States.ALL".to_string()];
        assert!(matches(&all, "Stage.Permanent"));
        let task_failed = vec!["States.TaskFailed".to_string()];
        assert!(matches(&task_failed, "Stage.Retryable") && !matches(&task_failed, "States.Timeout"));
        assert!(!matches(&["Stage.Retryable".to_string()], "Stage.Permanent"));
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let r = Retrier {
            error_equals: vec![],
            interval_secs: 1.0,
            max_attempts: 5,
            backoff_rate: 2.0,
            max_delay_secs: Some(5.0),
            full_jitter: true,
        };
        assert_eq!(r.delay(0, 1.0), Duration::from_secs(1));
        assert_eq!(r.delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(r.delay(5, 1.0), Duration::from_secs(5));
        assert_eq!(r.delay(2, 0.5), Duration::from_secs(2));
    }

    #[test]
    fn unsupported_definitions_are_refused() {
        assert!(StateMachine::parse(r#"{"StartAt":"A","States":{"A":{"Type":"Map","End":true}}}"#).is_err());
        assert!(
            StateMachine::parse(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#).unwrap_err().contains("no state named B")
        );
        assert!(StateMachine::parse(r#"{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"InputPath":"$.x"}}}"#).is_err());
    }
}
