//! Entry actions: work a state starts outside the engine, whose result
//! comes back as an `action_succeeded` / `action_failed` event.
//!
//! Built in: `command` (a local process), `http` (a webhook) and `emit`
//! (an event to another lifecycle, carried out inside the engine so it is
//! logged atomically with its cause). Domains add theirs (`train`, `test`,
//! `deploy`) by implementing [`Action`] and registering it.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// What an action is asked to do.
#[derive(Debug, Clone)]
pub struct ActionRequest {
    pub lifecycle: String,
    pub key: String,
    pub state: String,
    pub attempt: u16,
    /// The action's settings as written in the definition.
    pub config: Value,
    /// The instance's context when the state was entered.
    pub context: Value,
    /// Limit of one attempt (the action's `timeout`, default 1 hour).
    pub timeout: Duration,
}

/// A failed attempt: the message and whatever output there was.
#[derive(Debug, Clone)]
pub struct ActionFailure {
    pub message: String,
    pub output: Value,
}

/// A kind of entry action.
#[async_trait::async_trait]
pub trait Action: Send + Sync {
    /// The key under `action:` in a definition (`command`, `http`, …).
    fn kind(&self) -> &'static str;
    /// Runs one attempt. The returned value becomes the data of
    /// `action_succeeded`.
    async fn run(&self, request: ActionRequest) -> Result<Value, ActionFailure>;
}

/// The action kinds an engine knows. `emit` is always known: the engine
/// carries it out itself.
#[derive(Clone)]
pub struct ActionRegistry {
    actions: HashMap<&'static str, Arc<dyn Action>>,
}

pub const EMIT: &str = "emit";

impl Default for ActionRegistry {
    /// `command`, `http` and `emit`.
    fn default() -> Self {
        let mut r = ActionRegistry {
            actions: HashMap::new(),
        };
        r.register(Arc::new(CommandAction));
        r.register(Arc::new(HttpAction::default()));
        r
    }
}

impl ActionRegistry {
    pub fn register(&mut self, action: Arc<dyn Action>) {
        self.actions.insert(action.kind(), action);
    }
    /// Kinds a definition may use, for validation messages.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k: Vec<&'static str> = self.actions.keys().copied().collect();
        k.push(EMIT);
        k.sort_unstable();
        k
    }
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Action>> {
        self.actions.get(kind).cloned()
    }
}

/// Output kept from a process's stdout and stderr each.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// `command: "python train.py"` or `command: {run, env, cwd}`: runs the
/// line with `sh -c`, with KEEL_LIFECYCLE, KEEL_KEY, KEEL_STATE,
/// KEEL_ATTEMPT and KEEL_CONTEXT (JSON) in its environment. Exit code 0
/// succeeds; if the last line of stdout is a JSON object it becomes the
/// event's `output`.
pub struct CommandAction;

#[async_trait::async_trait]
impl Action for CommandAction {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn run(&self, req: ActionRequest) -> Result<Value, ActionFailure> {
        let fail = |message: String| ActionFailure {
            message,
            output: Value::Null,
        };
        let run = req
            .config
            .get("run")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("command action has no `run` line".to_owned()))?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(run)
            .env("KEEL_LIFECYCLE", &req.lifecycle)
            .env("KEEL_KEY", &req.key)
            .env("KEEL_STATE", &req.state)
            .env("KEEL_ATTEMPT", req.attempt.to_string())
            .env("KEEL_CONTEXT", req.context.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(env) = req.config.get("env").and_then(Value::as_object) {
            for (k, v) in env {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                cmd.env(k, v);
            }
        }
        if let Some(cwd) = req.config.get("cwd").and_then(Value::as_str) {
            cmd.current_dir(cwd);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("could not start `{run}`: {e}")))?;
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let read = async {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let a = async {
                if let Some(s) = stdout.as_mut() {
                    let _ = s.read_to_end(&mut out).await;
                }
            };
            let b = async {
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_end(&mut err).await;
                }
            };
            tokio::join!(a, b);
            let status = child.wait().await;
            (status, out, err)
        };
        let (status, out, err) = match tokio::time::timeout(req.timeout, read).await {
            Ok(r) => r,
            Err(_) => {
                return Err(fail(format!(
                    "`{run}` did not finish within {}",
                    crate::duration::format_duration(req.timeout)
                )));
            }
        };
        let status = status.map_err(|e| fail(format!("waiting for `{run}`: {e}")))?;
        let stdout = tail(&out);
        let stderr = tail(&err);
        let parsed = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object);
        let code = status.code();
        let output = json!({
            "exit_code": code,
            "stdout": stdout,
            "stderr": stderr,
            "output": parsed,
        });
        if status.success() {
            Ok(output)
        } else {
            Err(ActionFailure {
                message: match code {
                    Some(c) => format!("`{run}` exited with code {c}"),
                    None => format!("`{run}` was killed by a signal"),
                },
                output,
            })
        }
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_LIMIT);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// `http: URL` or `http: {url, method, headers, body}`: calls a webhook
/// with the instance as JSON (unless a body is given). A 2xx answer
/// succeeds and its JSON body (if any) is the output.
#[derive(Default)]
pub struct HttpAction {
    client: reqwest::Client,
}

#[async_trait::async_trait]
impl Action for HttpAction {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn run(&self, req: ActionRequest) -> Result<Value, ActionFailure> {
        let fail = |message: String| ActionFailure {
            message,
            output: Value::Null,
        };
        let url = req
            .config
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("http action has no `url`".to_owned()))?;
        let method = req
            .config
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("POST");
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| fail(format!("`{method}` is not an HTTP method")))?;
        let body = req.config.get("body").cloned().unwrap_or_else(|| {
            json!({
                "lifecycle": req.lifecycle,
                "key": req.key,
                "state": req.state,
                "attempt": req.attempt,
                "context": req.context,
            })
        });
        let mut call = self
            .client
            .request(method, url)
            .timeout(req.timeout)
            .json(&body);
        if let Some(headers) = req.config.get("headers").and_then(Value::as_object) {
            for (k, v) in headers {
                if let Some(v) = v.as_str() {
                    call = call.header(k, v);
                }
            }
        }
        let response = call
            .send()
            .await
            .map_err(|e| fail(format!("calling {url}: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body =
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(tail(text.as_bytes())));
        let output = json!({"status": status.as_u16(), "body": body});
        if status.is_success() {
            Ok(output)
        } else {
            Err(ActionFailure {
                message: format!("{url} answered {status}"),
                output,
            })
        }
    }
}
