//! The standard process metrics of Prometheus client libraries
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_start_time_seconds`), which stock Grafana dashboards expect.
//! Read from `/proc` at scrape time on Linux; elsewhere, and whenever a
//! file cannot be read, the series are left out.

use std::fmt::Write;

/// Clock ticks per second of `/proc/*/stat` times. The kernel reports them
/// in USER_HZ, which is 100 on every Linux architecture (Prometheus'
/// `procfs` assumes the same rather than calling sysconf).
const USER_HZ: f64 = 100.0;

/// What `/proc` says about this process.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ProcessFigures {
    resident_bytes: Option<u64>,
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
}

/// This process's resident memory (bytes) and CPU time (seconds), when
/// `/proc` tells them.
pub fn usage() -> (Option<u64>, Option<f64>) {
    let f = read();
    (f.resident_bytes, f.cpu_seconds)
}

/// Appends the process metrics (nothing where `/proc` is absent).
pub fn render(out: &mut String) {
    render_figures(out, read());
}

#[cfg(target_os = "linux")]
fn read() -> ProcessFigures {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let boot = std::fs::read_to_string("/proc/stat").ok();
    figures(stat.as_deref(), status.as_deref(), boot.as_deref())
}

#[cfg(not(target_os = "linux"))]
fn read() -> ProcessFigures {
    ProcessFigures::default()
}

/// The figures from the text of `/proc/self/stat`, `/proc/self/status` and
/// `/proc/stat`.
fn figures(stat: Option<&str>, status: Option<&str>, boot: Option<&str>) -> ProcessFigures {
    // The command name (field 2) is in parentheses and may itself hold
    // spaces and parentheses: the fields that follow start after the last ')'.
    let fields: Vec<&str> = stat
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // `fields[0]` is field 3 (state): field N is at N - 3.
    let ticks = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let cpu_seconds = match (ticks(14), ticks(15)) {
        (Some(user), Some(system)) => Some((user + system) as f64 / USER_HZ),
        _ => None,
    };
    let boot_time = boot.and_then(|b| {
        b.lines()
            .find_map(|l| l.strip_prefix("btime"))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let start_time_seconds = match (boot_time, ticks(22)) {
        (Some(boot), Some(start)) => Some(boot as f64 + start as f64 / USER_HZ),
        _ => None,
    };
    let resident_bytes = status.and_then(|s| {
        let rest = s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
        let kib = rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
        kib.checked_mul(1024)
    });
    ProcessFigures {
        resident_bytes,
        cpu_seconds,
        start_time_seconds,
    }
}

fn render_figures(out: &mut String, f: ProcessFigures) {
    if let Some(v) = f.resident_bytes {
        let _ = write!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {v}\n"
        );
    }
    if let Some(v) = f.cpu_seconds {
        let _ = write!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {v}\n"
        );
    }
    if let Some(v) = f.start_time_seconds {
        let _ = write!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {v}\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A command name with a space and a ')' in it, as a process may name itself.
    const STAT: &str = "4242 (keel (srv) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 123456 1048576000 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    const STATUS: &str = "Name:\tkeel\nVmPeak:\t 1024000 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n";
    const BOOT: &str = "cpu  1 2 3 4\nintr 5\nbtime 1700000000\nprocesses 99\n";

    #[test]
    fn figures_come_from_the_right_fields() {
        let f = figures(Some(STAT), Some(STATUS), Some(BOOT));
        assert_eq!(f.resident_bytes, Some(20480 * 1024));
        assert_eq!(f.cpu_seconds, Some(3.25));
        assert_eq!(f.start_time_seconds, Some(1_700_000_000.0 + 1234.56));
    }

    #[test]
    fn unreadable_or_garbled_files_leave_their_series_out() {
        let f = figures(None, Some("VmRSS: lots\n"), Some(BOOT));
        assert_eq!(f, ProcessFigures::default());
        let mut out = String::new();
        render_figures(&mut out, f);
        assert_eq!(out, "");
        let f = figures(Some(STAT), None, None);
        assert_eq!(f.cpu_seconds, Some(3.25));
        assert_eq!(f.start_time_seconds, None);
    }

    #[test]
    fn rendered_with_help_and_type() {
        let mut out = String::new();
        render_figures(&mut out, figures(Some(STAT), Some(STATUS), Some(BOOT)));
        assert!(out.contains(
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.25\n"
        ));
        assert!(out.contains("process_resident_memory_bytes 20971520\n"));
        assert!(out.contains("process_start_time_seconds 1700001234.56\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_all_three() {
        let f = read();
        assert!(f.resident_bytes.is_some_and(|b| b > 0), "{f:?}");
        assert!(f.cpu_seconds.is_some(), "{f:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        assert!(
            f.start_time_seconds
                .is_some_and(|s| s > 1e9 && s <= now + 1.0),
            "{f:?}"
        );
    }
}
