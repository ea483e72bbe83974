//! Operational telemetry: `/metrics` as Prometheus text (read by a Prometheus parser) for
//! admins only; the Lambdas' CloudWatch EMF lines checked against the documented format;
//! spans (OpenTelemetry's in-memory exporter) whose trace id is the request id; and no
//! personal data from a submission in any span or log line.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use domain::model::Plan;
use goviral_api::Endpoint;
use goviral_testkit::pipeline::Stages;
use goviral_testkit::{Backend, TestApp};
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

fn looks_like_an_id(v: &str) -> bool {
    v.len() >= 32 && v.chars().filter(|c| c.is_ascii_hexdigit()).count() >= 32
}

#[tokio::test]
async fn metrics_are_prometheus_text_for_admins_only() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let ops = t.user("ops@example.com", Plan::Enterprise, true).await;
    let pipeline = t.start_pipeline(&Stages::new());
    let body = json!({"content_type": "text", "caption": "3 habits that changed my mornings", "user_id": ann.user.id});
    let job = t.post("/api/v1/analyze").api_key(&ann.api_key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string();
    assert_eq!(t.finished_job(&ann.api_key, &job).await["status"], "complete");
    let compare = json!({"variants": ["one headline", "another headline"]});
    assert_eq!(t.post("/api/v1/compare").api_key(&ann.api_key).json(&compare).send().await.status, StatusCode::OK);
    assert_eq!(
        t.get(&format!("/api/v1/analyze/{}", uuid::Uuid::now_v7())).api_key(&ann.api_key).send().await.status,
        StatusCode::NOT_FOUND
    );
    pipeline.stop().await;

    assert_eq!(t.get("/metrics").send().await.status, StatusCode::UNAUTHORIZED);
    let r = t.get("/metrics").api_key(&ann.api_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = t.get("/metrics").api_key(&ops.api_key).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.raw.to_vec()).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");

    let find = |name: &str, labels: &[(&str, &str)]| {
        scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).cloned()
    };
    let value = |s: &prometheus_parse::Sample| match &s.value {
        prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
        prometheus_parse::Value::Summary(_) => f64::NAN,
    };
    let submitted = find("goviral_http_requests_total", &[("route", "/api/v1/analyze"), ("method", "POST"), ("status", "201")]);
    assert_eq!(submitted.as_ref().map(value), Some(1.0), "{text}");
    let missing = find("goviral_http_requests_total", &[("route", "/api/v1/analyze/:job_id"), ("method", "GET"), ("status", "404")]);
    assert!(missing.is_some(), "errors counted by route template: {text}");
    assert!(find("goviral_http_requests_total", &[("route", "/api/v1/compare"), ("status", "200")]).is_some(), "{text}");
    for stage in ["moderation", "extraction", "inference"] {
        let h = find("goviral_stage_duration_ms", &[("stage", stage), ("outcome", "ok")]).unwrap_or_else(|| panic!("{stage}: {text}"));
        assert!(value(&h) >= 1.0, "{stage} ran: {h:?}");
    }
    assert!(find("goviral_model_latency_ms", &[]).is_some(), "{text}");
    assert!(find("goviral_http_request_duration_ms", &[("route", "/api/v1/analyze")]).is_some(), "{text}");
    assert_eq!(find("goviral_queue_depth", &[("status", "queued")]).map(|s| value(&s)), Some(0.0), "{text}");
    assert!(find("goviral_live_streams", &[]).is_some(), "{text}");
    // Low cardinality: no label carries an id.
    for s in &scrape.samples {
        for (k, v) in s.labels.iter() {
            assert!(!looks_like_an_id(v), "{}: label {k}={v} is an id", s.metric);
        }
    }
    // The same series as JSON, for the dashboard's admin page.
    let j = t.get("/metrics?format=json").api_key(&ops.api_key).send().await;
    assert_eq!(j.status, StatusCode::OK);
    let series = j.body["series"].as_array().unwrap();
    assert!(series.iter().any(|s| s["name"] == "goviral_stage_duration_ms" && s["kind"] == "histogram" && s["buckets"].is_array()));
    let bad = t.get("/metrics?format=xml").api_key(&ops.api_key).send().await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// One EMF document as CloudWatch's specification requires it: `_aws` with an integer
/// millisecond Timestamp and CloudWatchMetrics directives (Namespace, Dimensions as arrays of
/// at most 30 names each present as a string member, Metrics of at most 100 definitions with
/// Name and a known Unit, each a number or an array of at most 100 numbers).
fn check_emf(line: &str) -> Result<(), String> {
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let aws = doc.get("_aws").ok_or("no _aws")?;
    aws["Timestamp"].as_i64().filter(|t| *t > 1_600_000_000_000).ok_or("Timestamp is not milliseconds since the epoch")?;
    let directives = aws["CloudWatchMetrics"].as_array().filter(|d| !d.is_empty()).ok_or("no CloudWatchMetrics")?;
    const UNITS: &[&str] = &["Seconds", "Microseconds", "Milliseconds", "Bytes", "Count", "Percent", "None"];
    for d in directives {
        let namespace = d["Namespace"].as_str().ok_or("no Namespace")?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err("bad Namespace".into());
        }
        for set in d["Dimensions"].as_array().ok_or("no Dimensions")? {
            let names = set.as_array().ok_or("a dimension set is not an array")?;
            if names.len() > 30 {
                return Err("more than 30 dimensions".into());
            }
            for name in names {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                let value = doc[name].as_str().ok_or(format!("dimension {name} has no string value"))?;
                if looks_like_an_id(value) {
                    return Err(format!("dimension {name}={value} is an id"));
                }
            }
        }
        let metrics = d["Metrics"].as_array().filter(|m| !m.is_empty() && m.len() <= 100).ok_or("Metrics: 1 to 100")?;
        for m in metrics {
            let name = m["Name"].as_str().ok_or("a metric has no Name")?;
            if !m["Unit"].as_str().is_some_and(|u| UNITS.contains(&u)) {
                return Err(format!("{name}: unit {}", m["Unit"]));
            }
            match &doc[name] {
                Value::Number(_) => {}
                Value::Array(values) if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                other => return Err(format!("{name} = {other}: not a number or up to 100 numbers")),
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn lambdas_print_metrics_in_cloudwatch_embedded_metric_format() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let body = json!({"content_type": "text", "caption": "Metered in a Lambda", "user_id": ann.user.id}).to_string();
    let request = http::Request::post("/api/v1/analyze")
        .header("content-type", "application/json")
        .header("x-api-key", &ann.api_key)
        .body(axum::body::Body::from(body))
        .unwrap();
    // A Lambda's router reports after each invocation: what it recorded is printed, and drained.
    let response = goviral_lambda::endpoint_router(t.app.clone(), Endpoint::Analyze).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(goviral_lambda::emf_lines("api-analyze").is_empty(), "reported by the invocation itself");
    // The same routes without the report, to read the lines it prints.
    let request = http::Request::get("/api/v1/analyze/0190a0a0-0000-7000-8000-000000000000")
        .header("x-api-key", &ann.api_key)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = goviral_api::router(t.app.clone(), &[Endpoint::AnalyzeStatus]).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let lines = goviral_lambda::emf_lines("api-analyze-status");
    assert!(!lines.is_empty());
    let mut seen = BTreeSet::new();
    for line in &lines {
        check_emf(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let doc: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (doc["_aws"]["CloudWatchMetrics"][0]["Namespace"].as_str(), doc["Function"].as_str()),
            (Some("GoViralNow"), Some("api-analyze-status"))
        );
        seen.insert(doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"].as_str().unwrap().to_string());
    }
    assert!(seen.contains("Requests") && seen.contains("RequestLatency"), "{seen:?}");
    // Reported once: the next invocation's lines hold only what it recorded.
    assert!(goviral_lambda::emf_lines("api-analyze-status").is_empty());
    // The checker refuses what CloudWatch would.
    assert!(check_emf(r#"{"_aws":{"Timestamp":1800000000000,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["Route"]],"Metrics":[{"Name":"X","Unit":"Count"}]}]},"X":1}"#).is_err());
    assert!(check_emf(r#"{"_aws":{"Timestamp":1800000000000,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"X","Unit":"Furlongs"}]}]},"X":1}"#).is_err());
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn spans_carry_the_request_id_and_no_personal_data() {
    use opentelemetry::trace::TraceId;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = goviral_app::telemetry::provider_with(exporter.clone(), "goviral-test");
    let logs = LogBuffer::default();
    let writer = logs.clone();
    goviral_app::telemetry::install_to(true, Some(provider.clone()), move || writer.clone());

    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let pipeline = t.start_pipeline(&Stages::new());
    let (email, phone) = ("lee.private@example.org", "+1 415 555 0199");
    let caption = format!("Ask me anything! Write to {email} or call {phone} tonight");
    let request_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let body = json!({"content_type": "text", "caption": caption, "user_id": ann.user.id});
    let r = t.post("/api/v1/analyze").api_key(&ann.api_key).header("x-request-id", request_id).json(&body).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_string();
    assert_eq!(t.finished_job(&ann.api_key, &job).await["status"], "complete");
    pipeline.stop().await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let attr = |s: &opentelemetry_sdk::trace::SpanData, key: &str| {
        s.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    };
    let submit = spans
        .iter()
        .find(|s| s.name == "request" && attr(s, "route").as_deref() == Some("/api/v1/analyze"))
        .unwrap_or_else(|| panic!("no request span: {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(submit.span_context.trace_id(), TraceId::from_hex(request_id).unwrap(), "the trace id is the request id");
    assert_eq!((attr(submit, "method").as_deref(), attr(submit, "status").as_deref()), (Some("POST"), Some("201")));
    let stages: BTreeSet<String> = spans.iter().filter(|s| s.name == "stage").filter_map(|s| attr(s, "stage")).collect();
    for stage in ["moderation", "extraction", "inference"] {
        assert!(stages.contains(stage), "{stage} span: {stages:?}");
    }
    assert!(spans.iter().any(|s| s.name == "stage" && attr(s, "job_id").as_deref() == Some(job.as_str())), "stage spans name their job");

    // Nothing the creator wrote is in a span or a log line.
    let exported = format!("{spans:?}");
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("served"), "logs were captured");
    for secret in [email, "lee.private", phone, "555 0199", "Ask me anything"] {
        assert!(!exported.contains(secret), "a span carries {secret:?}");
        assert!(!logged.contains(secret), "a log line carries {secret:?}");
    }
}
