//! Request counts and latency histograms per route, rendered in the
//! Prometheus text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
struct Series {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One route's series, by method and status, kept sorted.
type RouteSeries = Vec<(String, u16, Series)>;

/// The server's HTTP metrics.
pub struct HttpMetrics {
    /// By route template; a request to a known route, method and status
    /// allocates nothing.
    series: Mutex<BTreeMap<String, RouteSeries>>,
    started: Instant,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            series: Mutex::default(),
            started: Instant::now(),
        }
    }
}

impl HttpMetrics {
    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let Ok(mut map) = self.series.lock() else {
            return;
        };
        let entries = match map.get_mut(route) {
            Some(entries) => entries,
            None => map.entry(route.to_owned()).or_default(),
        };
        let key = (method, status);
        let at = match entries.binary_search_by(|(m, st, _)| (m.as_str(), *st).cmp(&key)) {
            Ok(at) => at,
            Err(at) => {
                entries.insert(at, (method.to_owned(), status, Series::default()));
                at
            }
        };
        let s = &mut entries[at].2;
        s.count += 1;
        s.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP keel_http_requests_total HTTP requests served, by route, method and status.\n",
        );
        out.push_str("# TYPE keel_http_requests_total counter\n");
        let Ok(map) = self.series.lock() else {
            return out;
        };
        let series = || {
            map.iter()
                .flat_map(|(route, e)| e.iter().map(move |(m, st, s)| (route, m, st, s)))
        };
        for (route, method, status, s) in series() {
            out.push_str(&format!(
                "keel_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}\n",
                escape(route),
                s.count
            ));
        }
        out.push_str("# HELP keel_http_request_duration_seconds Time to answer an HTTP request.\n");
        out.push_str("# TYPE keel_http_request_duration_seconds histogram\n");
        for (route, method, status, s) in series() {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(route)
            );
            for (i, bound) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "keel_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}\n",
                    s.buckets[i]
                ));
            }
            out.push_str(&format!(
                "keel_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n",
                s.count
            ));
            out.push_str(&format!(
                "keel_http_request_duration_seconds_sum{{{labels}}} {}\n",
                s.sum
            ));
            out.push_str(&format!(
                "keel_http_request_duration_seconds_count{{{labels}}} {}\n",
                s.count
            ));
        }
        out.push_str("# HELP keel_uptime_seconds Seconds since the server started.\n");
        out.push_str("# TYPE keel_uptime_seconds gauge\n");
        out.push_str(&format!(
            "keel_uptime_seconds {}\n",
            self.started.elapsed().as_secs_f64()
        ));
        out
    }
}

/// A label value as the exposition format writes it: backslash, double
/// quote and line feed escaped.
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware recording every request under its route template (never the
/// raw path, so ids do not explode the series count).
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let start = Instant::now();
    let response = next.run(req).await;
    state.metrics.observe(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method.as_str(),
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_land_in_cumulative_buckets() {
        let m = HttpMetrics::default();
        m.observe("/x", "GET", 200, 0.0003);
        m.observe("/x", "GET", 200, 0.02);
        m.observe("/x", "POST", 500, 0.02);
        m.observe("/a", "GET", 200, 0.02);
        let text = m.render();
        assert!(
            text.contains("keel_http_requests_total{route=\"/x\",method=\"GET\",status=\"200\"} 2")
        );
        assert!(text.contains("le=\"0.0005\"} 1"));
        assert!(text.contains("le=\"0.025\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(
            text.contains(
                "keel_http_requests_total{route=\"/x\",method=\"POST\",status=\"500\"} 1"
            )
        );
        // Sorted by route, then method and status.
        let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
        assert!(at("route=\"/a\"") < at("route=\"/x\",method=\"GET\""));
        assert!(at("route=\"/x\",method=\"GET\"") < at("route=\"/x\",method=\"POST\""));
    }
}
