//! The local executor: each attempt runs under a supervisor process
//! (`keel train supervise`), started in its own session so it outlives the
//! server. The supervisor starts the job's command in its own process
//! group, samples the group's resident memory, enforces the timeout,
//! forwards a cancellation (SIGTERM) to the whole group, and when the
//! command ends writes what it used to `usage.json` — CPU time from the
//! kernel's accounting of the reaped child (`getrusage(RUSAGE_CHILDREN)`,
//! which covers the descendants it waited for), memory as resident bytes
//! integrated over time. A server that restarts finds a running attempt
//! again from `supervisor.json` (the supervisor's pid and start time), and
//! its outcome from `usage.json`.
//!
//! ```text
//! DATA/jobs/<id>/work/           the command's working directory (code copied here)
//! DATA/jobs/<id>/checkpoints/    kept across attempts
//! DATA/jobs/<id>/attempt-<n>/    stdout.log, stderr.log, supervisor.json, usage.json
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::store::Usage;

pub const USAGE_FILE: &str = "usage.json";
pub const SUPERVISOR_FILE: &str = "supervisor.json";

/// How long a cancelled or timed-out command gets between SIGTERM and
/// SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

/// How often the supervisor samples memory.
const SAMPLE: Duration = Duration::from_millis(200);

/// A job's directories.
#[derive(Debug, Clone)]
pub struct JobDir(pub PathBuf);

impl JobDir {
    pub fn new(root: &Path, job: i64) -> Self {
        JobDir(root.join(job.to_string()))
    }
    pub fn work(&self) -> PathBuf {
        self.0.join("work")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    pub fn attempt(&self, n: u32) -> PathBuf {
        self.0.join(format!("attempt-{n}"))
    }
}

/// What the supervisor reports when the command has ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub exit_code: Option<i32>,
    /// The signal that ended the command, if one did.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    pub usage: Usage,
    /// The command could not be started.
    pub error: Option<String>,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.cancelled && self.error.is_none()
    }

    /// What happened, for people.
    pub fn describe(&self) -> String {
        if let Some(e) = &self.error {
            return format!("could not start: {e}");
        }
        if self.cancelled {
            return "cancelled".into();
        }
        if self.timed_out {
            return "timed out".into();
        }
        match (self.exit_code, self.signal) {
            (Some(0), _) => "exited with status 0".into(),
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended".into(),
        }
    }
}

/// Who the supervisor is, so a restarted server can find it again and not
/// mistake a reused pid for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorId {
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`).
    pub start_ticks: u64,
}

/// `/proc/PID/stat` fields after the command name: (state, pgrp, start ticks).
fn proc_stat(pid: u32) -> Option<(char, i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, pgrp, start))
}

impl SupervisorId {
    pub fn of(pid: u32) -> Option<Self> {
        proc_stat(pid).map(|(_, _, start_ticks)| SupervisorId { pid, start_ticks })
    }

    /// Whether this very process still runs (not a zombie, not a reused pid).
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, _, start)) if start == self.start_ticks && state != 'Z')
    }

    /// Asks the supervisor to stop the command (SIGTERM).
    pub fn cancel(&self) {
        if self.alive() {
            signal(self.pid as i32, libc::SIGTERM);
        }
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid (or a negative process-group id) and a
    // signal number has no memory effects; errors (no such process) are
    // harmless here.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The resident bytes of every process in group `pgid`.
fn group_rss(pgid: i32) -> u64 {
    let page = 4096u64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if !matches!(proc_stat(pid), Some((_, g, _)) if g == pgid) {
            continue;
        }
        if let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            && let Some(rss) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        {
            total += rss * page;
        }
    }
    total
}

fn children_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer it is given,
    // which points at a zeroed, properly aligned value we own.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) } == 0;
    if !ok {
        return 0.0;
    }
    // SAFETY: getrusage succeeded, so the value is initialised.
    let u = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// Writes `value` as JSON to `path` atomically (temporary file, fsync,
/// rename).
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What the supervisor runs.
#[derive(Debug, Clone)]
pub struct Supervised {
    /// The attempt's directory (logs, reports).
    pub attempt_dir: PathBuf,
    /// The command's working directory.
    pub work_dir: PathBuf,
    /// A shell command line, run by `sh -c`.
    pub command: String,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
}

/// The supervisor's body (`keel train supervise`): runs the command to its
/// end and writes [`USAGE_FILE`]. Returns the report it wrote.
pub async fn supervise(job: Supervised) -> Result<Report, TrainError> {
    use tokio::signal::unix::{SignalKind, signal as on_signal};
    let dir = &job.attempt_dir;
    std::fs::create_dir_all(dir)?;
    std::fs::create_dir_all(&job.work_dir)?;
    if let Some(me) = SupervisorId::of(std::process::id()) {
        write_json_atomic(&dir.join(SUPERVISOR_FILE), &me)?;
    }
    let stdout = std::fs::File::create(dir.join("stdout.log"))?;
    let stderr = std::fs::File::create(dir.join("stderr.log"))?;
    let started_at = keel_core::time::now_millis();
    let clock = Instant::now();
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(&job.command)
        .current_dir(&job.work_dir)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    let mut report = Report {
        exit_code: None,
        signal: None,
        timed_out: false,
        cancelled: false,
        usage: Usage {
            started_at,
            ..Usage::default()
        },
        error: None,
    };
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(e.to_string());
            report.usage.finished_at = keel_core::time::now_millis();
            write_json_atomic(&dir.join(USAGE_FILE), &report)?;
            return Ok(report);
        }
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let mut term = on_signal(SignalKind::terminate())?;
    let mut interrupt = on_signal(SignalKind::interrupt())?;
    let deadline = job.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut stop_at: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(SAMPLE);
    let mut last_sample = Instant::now();
    let (mut gb_seconds, mut max_rss) = (0.0f64, 0u64);
    let status = loop {
        let timeout = async {
            match deadline {
                Some(d) if stop_at.is_none() => tokio::time::sleep_until(d).await,
                _ => std::future::pending().await,
            }
        };
        let kill = async {
            match stop_at {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status?,
            _ = term.recv() => {
                report.cancelled = true;
                signal(-pgid, libc::SIGTERM);
                stop_at.get_or_insert(tokio::time::Instant::now() + GRACE);
            }
            _ = interrupt.recv() => {
                report.cancelled = true;
                signal(-pgid, libc::SIGTERM);
                stop_at.get_or_insert(tokio::time::Instant::now() + GRACE);
            }
            _ = timeout => {
                report.timed_out = true;
                signal(-pgid, libc::SIGTERM);
                stop_at = Some(tokio::time::Instant::now() + GRACE);
            }
            _ = kill => {
                signal(-pgid, libc::SIGKILL);
                stop_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
            _ = ticker.tick() => {
                let rss = group_rss(pgid);
                let dt = last_sample.elapsed().as_secs_f64();
                last_sample = Instant::now();
                gb_seconds += rss as f64 / 1e9 * dt;
                max_rss = max_rss.max(rss);
            }
        }
    };
    // Whatever the command left behind in its group goes with it.
    signal(-pgid, libc::SIGKILL);
    {
        use std::os::unix::process::ExitStatusExt;
        report.exit_code = status.code();
        report.signal = status.signal();
    }
    report.usage.finished_at = keel_core::time::now_millis();
    report.usage.wall_seconds = clock.elapsed().as_secs_f64();
    report.usage.cpu_seconds = children_cpu_seconds();
    report.usage.memory_gb_seconds = gb_seconds;
    report.usage.max_rss_bytes = max_rss;
    write_json_atomic(&dir.join(USAGE_FILE), &report)?;
    Ok(report)
}

/// The supervisor's report, once it has written one.
pub fn read_report(attempt_dir: &Path) -> Option<Report> {
    let text = std::fs::read(attempt_dir.join(USAGE_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The supervisor of an attempt, from the file it wrote.
pub fn read_supervisor(attempt_dir: &Path) -> Option<SupervisorId> {
    let text = std::fs::read(attempt_dir.join(SUPERVISOR_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Starts `program supervise-args…` detached from the server (own session),
/// returning its identity once it is running.
pub fn spawn_supervisor(
    program: &Path,
    args: &[String],
    attempt_dir: &Path,
) -> Result<SupervisorId, TrainError> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(attempt_dir)?;
    let log = std::fs::File::create(attempt_dir.join("supervisor.log"))?;
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the
    // parent; it makes the supervisor its own session so it outlives the
    // server and its terminal.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = child.id();
    // Reap it when it ends, so no zombie is left while the server lives.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    SupervisorId::of(pid).ok_or_else(|| {
        TrainError::Executor(format!(
            "the supervisor (pid {pid}) ended at once; see {}",
            attempt_dir.join("supervisor.log").display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_supervised_command_is_measured_and_its_group_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let attempt = dir.path().join("attempt-1");
        // Burn about half a CPU-second in a child of the shell.
        let burn =
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done; echo oops >&2; exit 3";
        let report = supervise(Supervised {
            attempt_dir: attempt.clone(),
            work_dir: dir.path().join("work"),
            command: burn.into(),
            env: vec![("KEEL_TEST".into(), "1".into())],
            timeout: None,
        })
        .await
        .unwrap();
        assert_eq!(report.exit_code, Some(3));
        assert!(!report.succeeded() && report.describe() == "exited with status 3");
        assert!(report.usage.cpu_seconds > 0.05, "{report:?}");
        assert!(report.usage.cpu_seconds <= report.usage.wall_seconds * 1.1 + 0.05);
        assert_eq!(
            std::fs::read_to_string(attempt.join("stdout.log")).unwrap(),
            "done\n"
        );
        assert_eq!(
            std::fs::read_to_string(attempt.join("stderr.log")).unwrap(),
            "oops\n"
        );
        assert_eq!(read_report(&attempt), Some(report));
        assert!(read_supervisor(&attempt).is_some());

        let timed = supervise(Supervised {
            attempt_dir: dir.path().join("attempt-2"),
            work_dir: dir.path().join("work"),
            command: "sleep 30 & sleep 30; wait".into(),
            env: vec![],
            timeout: Some(Duration::from_millis(300)),
        })
        .await
        .unwrap();
        assert!(
            timed.timed_out && timed.usage.wall_seconds < 5.0,
            "{timed:?}"
        );
        assert_eq!(timed.describe(), "timed out");
    }

    #[test]
    fn this_process_is_found_and_a_stranger_is_not() {
        let me = SupervisorId::of(std::process::id()).unwrap();
        assert!(me.alive());
        let impostor = SupervisorId {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        };
        assert!(!impostor.alive());
    }
}
