//! Operational metrics: request rate, latency and errors per route, stage durations and
//! failures, model latency, webhook outcomes, queue depth. One process-wide registry, read
//! two ways: as Prometheus text (`goviral serve`'s admin-only `/metrics`) and as CloudWatch
//! Embedded Metric Format lines (each Lambda prints what it recorded after an invocation).
//!
//! Labels are low-cardinality by construction: route templates, methods, status codes,
//! stages, outcomes, model names. Never a user id, job id or anything a client typed; and the
//! registry holds at most `MAX_SERIES` series, so no input can grow it without bound.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Histogram buckets in milliseconds (upper bounds; +Inf is implied).
pub const BUCKETS_MS: &[f64] = &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0, 60_000.0];
/// Distinct (name, labels) series kept; later ones are counted in `dropped`.
const MAX_SERIES: usize = 2_000;
/// EMF allows at most 100 values of one metric in one document.
const EMF_MAX_VALUES: usize = 100;

/// The metrics this product records. Each has one meaning, one unit and fixed label names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Requests answered: route (template), method, status (code).
    HttpRequests,
    /// Time to answer a request (ms): route, method.
    HttpDuration,
    /// Time a pipeline stage took (ms): stage, outcome (`ok`, `retryable`, `permanent`).
    StageDuration,
    /// Time the scorer took on one text (ms): model.
    ModelLatency,
    /// Webhook delivery attempts: outcome (`delivered`, `retrying`, `dead`).
    WebhookDeliveries,
    /// Jobs waiting or under way (gauge, set when read): status.
    QueueDepth,
    /// Live streams open now (gauge).
    LiveStreams,
    /// Connections or streams refused to keep one client from taking them all: why
    /// (`per_address`, `reserve`, `streams_per_user`, `streams_per_key`).
    ConnectionsRefused,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::HttpRequests => "goviral_http_requests_total",
            Metric::HttpDuration => "goviral_http_request_duration_ms",
            Metric::StageDuration => "goviral_stage_duration_ms",
            Metric::ModelLatency => "goviral_model_latency_ms",
            Metric::WebhookDeliveries => "goviral_webhook_deliveries_total",
            Metric::QueueDepth => "goviral_queue_depth",
            Metric::LiveStreams => "goviral_live_streams",
            Metric::ConnectionsRefused => "goviral_connections_refused_total",
        }
    }

    /// The CloudWatch metric name and unit.
    fn emf(self) -> (&'static str, &'static str) {
        match self {
            Metric::HttpRequests => ("Requests", "Count"),
            Metric::HttpDuration => ("RequestLatency", "Milliseconds"),
            Metric::StageDuration => ("StageDuration", "Milliseconds"),
            Metric::ModelLatency => ("ModelLatency", "Milliseconds"),
            Metric::WebhookDeliveries => ("WebhookDeliveries", "Count"),
            Metric::QueueDepth => ("QueueDepth", "Count"),
            Metric::LiveStreams => ("LiveStreams", "Count"),
            Metric::ConnectionsRefused => ("ConnectionsRefused", "Count"),
        }
    }

    fn help(self) -> &'static str {
        match self {
            Metric::HttpRequests => "Requests answered, by route template, method and status code.",
            Metric::HttpDuration => "Time to answer a request in milliseconds, by route template and method.",
            Metric::StageDuration => "Time a pipeline stage took in milliseconds, by stage and outcome.",
            Metric::ModelLatency => "Time the scorer took on one text in milliseconds, by model.",
            Metric::WebhookDeliveries => "Webhook delivery attempts, by outcome.",
            Metric::QueueDepth => "Jobs queued or under way, by status.",
            Metric::LiveStreams => "Live job streams open now.",
            Metric::ConnectionsRefused => "Connections and streams refused so one client cannot take them all, by reason.",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Metric::HttpRequests | Metric::WebhookDeliveries | Metric::ConnectionsRefused => Kind::Counter,
            Metric::HttpDuration | Metric::StageDuration | Metric::ModelLatency => Kind::Histogram,
            Metric::QueueDepth | Metric::LiveStreams => Kind::Gauge,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Histogram,
    Gauge,
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default, Clone)]
struct Series {
    /// Counter total, gauge value, or histogram count.
    value: f64,
    sum: f64,
    /// Cumulative counts per bucket of `BUCKETS_MS` (histograms).
    buckets: Vec<u64>,
    /// Since the last EMF flush: the counter's increase, or the observed values.
    pending_count: f64,
    pending_values: Vec<f64>,
}

#[derive(Default)]
struct Registry {
    series: BTreeMap<(Metric, Labels), Series>,
    dropped: u64,
}

/// The process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
}

pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics { registry: Mutex::new(Registry::default()) })
}

/// One series as read: for the admin page and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesView {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: BTreeMap<&'static str, String>,
    /// Counter total, gauge value, or number of observations.
    pub value: f64,
    /// Histograms: the sum of the observations, and cumulative counts per `le` bound.
    pub sum: Option<f64>,
    pub buckets: Option<Vec<(f64, u64)>>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut self.registry.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn update(&self, metric: Metric, labels: &[(&'static str, &str)], f: impl FnOnce(&mut Series)) {
        let key = (metric, labels.iter().map(|(k, v)| (*k, v.to_string())).collect::<Labels>());
        self.with(|r| {
            if let Some(series) = r.series.get_mut(&key) {
                f(series);
            } else if r.series.len() < MAX_SERIES {
                f(r.series.entry(key).or_default());
            } else {
                r.dropped += 1;
            }
        });
    }

    pub fn count(&self, metric: Metric, labels: &[(&'static str, &str)]) {
        self.update(metric, labels, |s| {
            s.value += 1.0;
            s.pending_count += 1.0;
        });
    }

    pub fn observe_ms(&self, metric: Metric, labels: &[(&'static str, &str)], ms: f64) {
        let ms = if ms.is_finite() { ms.max(0.0) } else { return };
        self.update(metric, labels, |s| {
            if s.buckets.is_empty() {
                s.buckets = vec![0; BUCKETS_MS.len()];
            }
            s.value += 1.0;
            s.sum += ms;
            for (i, bound) in BUCKETS_MS.iter().enumerate() {
                if ms <= *bound {
                    s.buckets[i] += 1;
                }
            }
            if s.pending_values.len() < EMF_MAX_VALUES {
                s.pending_values.push((ms * 1000.0).round() / 1000.0);
            }
        });
    }

    pub fn set(&self, metric: Metric, labels: &[(&'static str, &str)], value: f64) {
        self.update(metric, labels, |s| {
            s.value = value;
            s.pending_values = vec![value];
        });
    }

    pub fn snapshot(&self) -> Vec<SeriesView> {
        self.with(|r| {
            r.series
                .iter()
                .map(|((metric, labels), s)| {
                    let histogram = metric.kind() == Kind::Histogram;
                    SeriesView {
                        name: metric.name(),
                        kind: metric.kind(),
                        labels: labels.iter().cloned().collect(),
                        value: s.value,
                        sum: histogram.then_some(s.sum),
                        buckets: histogram.then(|| BUCKETS_MS.iter().copied().zip(s.buckets.iter().copied()).collect()),
                    }
                })
                .collect()
        })
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let (series, dropped) = self.with(|r| (r.series.clone(), r.dropped));
        let mut out = String::new();
        let mut current: Option<Metric> = None;
        for ((metric, labels), s) in &series {
            if current != Some(*metric) {
                current = Some(*metric);
                let kind = match metric.kind() {
                    Kind::Counter => "counter",
                    Kind::Histogram => "histogram",
                    Kind::Gauge => "gauge",
                };
                out.push_str(&format!("# HELP {} {}\n# TYPE {} {kind}\n", metric.name(), metric.help(), metric.name()));
            }
            let name = metric.name();
            match metric.kind() {
                Kind::Counter | Kind::Gauge => out.push_str(&format!("{name}{} {}\n", label_text(labels, None), number(s.value))),
                Kind::Histogram => {
                    for (bound, count) in BUCKETS_MS.iter().zip(&s.buckets) {
                        out.push_str(&format!("{name}_bucket{} {count}\n", label_text(labels, Some(&number(*bound)))));
                    }
                    out.push_str(&format!("{name}_bucket{} {}\n", label_text(labels, Some("+Inf")), number(s.value)));
                    out.push_str(&format!("{name}_sum{} {}\n", label_text(labels, None), number(s.sum)));
                    out.push_str(&format!("{name}_count{} {}\n", label_text(labels, None), number(s.value)));
                }
            }
        }
        out.push_str("# HELP goviral_metric_series_dropped_total Series not kept because the registry was full.\n");
        out.push_str(&format!("# TYPE goviral_metric_series_dropped_total counter\ngoviral_metric_series_dropped_total {dropped}\n"));
        out
    }

    /// What was recorded since the last flush, as CloudWatch Embedded Metric Format documents
    /// (one JSON line per metric and label set), with `dimensions` (such as the function's
    /// name) added to each; the pending values are cleared.
    pub fn flush_emf(&self, namespace: &str, dimensions: &[(&'static str, &str)], timestamp_ms: i64) -> Vec<String> {
        let drained: Vec<(Metric, Labels, f64, Vec<f64>)> = self.with(|r| {
            r.series
                .iter_mut()
                .filter(|(_, s)| s.pending_count > 0.0 || !s.pending_values.is_empty())
                .map(|((metric, labels), s)| {
                    let out = (*metric, labels.clone(), s.pending_count, std::mem::take(&mut s.pending_values));
                    s.pending_count = 0.0;
                    out
                })
                .collect()
        });
        drained
            .into_iter()
            .map(|(metric, labels, count, values)| {
                let (metric_name, unit) = metric.emf();
                let mut doc = serde_json::Map::new();
                let mut dimension_names: Vec<String> = Vec::new();
                for (k, v) in dimensions.iter().map(|(k, v)| (*k, v.to_string())).chain(labels) {
                    let key = emf_dimension(k);
                    dimension_names.push(key.clone());
                    doc.insert(key, v.into());
                }
                let value = match metric.kind() {
                    Kind::Counter => serde_json::json!(count),
                    Kind::Histogram | Kind::Gauge => serde_json::json!(values),
                };
                doc.insert(metric_name.into(), value);
                doc.insert(
                    "_aws".into(),
                    serde_json::json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": namespace,
                            "Dimensions": [dimension_names],
                            "Metrics": [{"Name": metric_name, "Unit": unit}],
                        }],
                    }),
                );
                serde_json::Value::Object(doc).to_string()
            })
            .collect()
    }
}

/// A label name as a CloudWatch dimension (`route` → `Route`).
fn emf_dimension(label: &str) -> String {
    let mut chars = label.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Metrics {
        Metrics { registry: Mutex::new(Registry::default()) }
    }

    #[test]
    fn histograms_are_cumulative_and_emf_drains_what_was_recorded() {
        let m = fresh();
        for ms in [3.0, 40.0, 40.0, 7_000.0] {
            m.observe_ms(Metric::HttpDuration, &[("route", "/api/v1/analyze"), ("method", "POST")], ms);
        }
        m.count(Metric::HttpRequests, &[("route", "/api/v1/analyze"), ("method", "POST"), ("status", "201")]);
        let text = m.prometheus();
        assert!(text.contains("goviral_http_request_duration_ms_bucket{route=\"/api/v1/analyze\",method=\"POST\",le=\"5\"} 1\n"), "{text}");
        assert!(text.contains("le=\"50\"} 3\n") && text.contains("le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("goviral_http_request_duration_ms_sum{route=\"/api/v1/analyze\",method=\"POST\"} 7083\n"), "{text}");
        let lines = m.flush_emf("GoViralNow", &[("function", "api-analyze")], 1_800_000_000_000);
        assert_eq!(lines.len(), 2);
        let doc: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(doc["RequestLatency"], serde_json::json!([3.0, 40.0, 40.0, 7000.0]));
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0], serde_json::json!(["Function", "Route", "Method"]));
        assert!(m.flush_emf("GoViralNow", &[], 0).is_empty(), "drained");
        assert!(m.prometheus().contains("_count{route=\"/api/v1/analyze\",method=\"POST\"} 4\n"), "Prometheus keeps the totals");
    }

    #[test]
    fn the_registry_is_bounded() {
        let m = fresh();
        for i in 0..(MAX_SERIES + 50) {
            m.count(Metric::WebhookDeliveries, &[("outcome", &i.to_string())]);
        }
        assert_eq!(m.snapshot().len(), MAX_SERIES);
        assert!(m.prometheus().contains("goviral_metric_series_dropped_total 50\n"));
    }
}
