//! The `command` provider against small shell scripts: prompt on stdin, reply on stdout, streaming, JSON,
//! timeouts, killing the program and what it started, output that is not UTF-8, and failures that name the
//! program. Where a test needs output split across reads, the script waits on a named pipe the test opens.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use aurora::llm::http::MAX_REPLY_BYTES;
use aurora::llm::{LlmClient, LlmConfig, LlmError, LlmRequest, ProviderKind, RetryPolicy, StreamEvent, TextStream};

use super::{Plan, drain, env};

/// How long a test waits for something that should happen at once before failing instead of hanging.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// The request every test sends: [`super::request`] with room for a loaded machine, as no test here waits
/// for its timeout but the ones that set their own.
fn request() -> LlmRequest {
    super::request().with_timeout(Duration::from_secs(60))
}

/// Writes an executable `/bin/sh` script into `dir`.
fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-llm.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn config(argv: Vec<String>) -> LlmConfig {
    LlmConfig { provider: ProviderKind::Command, command: argv, model: "script".into(), ..LlmConfig::default() }
}

fn pipe(argv: Vec<String>) -> aurora::llm::Llm {
    aurora::llm::Llm::from_config(&config(argv), &env).expect("valid command config").with_retry(RetryPolicy::none())
}

fn pipe_script(dir: &Path, body: &str) -> aurora::llm::Llm {
    pipe(vec![script(dir, body).display().to_string()])
}

/// A named pipe a script blocks on (`read go < gate`) until the test opens it, so what the script prints
/// after that line cannot arrive in the same read as what it printed before.
struct Gate(PathBuf);

impl Gate {
    fn new(dir: &Path, name: &str) -> Gate {
        let path = dir.join(name);
        let status = std::process::Command::new("mkfifo").arg(&path).status().expect("run mkfifo");
        assert!(status.success(), "mkfifo {}", path.display());
        Gate(path)
    }

    /// Lets the script go on (opening a FIFO for writing waits for its reader).
    async fn open(&self) {
        let path = self.0.clone();
        let write = tokio::task::spawn_blocking(move || std::fs::write(path, "go\n"));
        tokio::time::timeout(EVENT_WAIT, write)
            .await
            .expect("the script reads its gate")
            .expect("join")
            .expect("write");
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

/// The next stream event, failing the test if none comes within [`EVENT_WAIT`].
async fn next(stream: &mut TextStream) -> Option<Result<StreamEvent, LlmError>> {
    tokio::time::timeout(EVENT_WAIT, stream.next()).await.expect("the stream moved on")
}

async fn next_delta(stream: &mut TextStream) -> String {
    match next(stream).await {
        Some(Ok(StreamEvent::Delta(delta))) => delta,
        other => panic!("expected a delta, got {other:?}"),
    }
}

/// Whether process `pid` has ended: gone, or a zombie waiting to be reaped by whoever inherited it.
fn ended(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// Waits up to [`EVENT_WAIT`] for process `pid` to end.
async fn wait_ended(pid: &str) -> bool {
    let give_up = tokio::time::Instant::now() + EVENT_WAIT;
    while tokio::time::Instant::now() < give_up {
        if ended(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn read_pid(path: &Path) -> String {
    std::fs::read_to_string(path).expect("pid written").trim().to_owned()
}

#[tokio::test]
async fn prompt_goes_to_stdin_and_stdout_is_the_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = pipe_script(dir.path(), r#"prompt=$(cat); printf 'echo: %s' "$prompt""#);
    let response = llm.complete(&request(), &CancellationToken::new()).await.expect("reply");
    assert_eq!(response.content, "echo: You are terse.\n\nSay hello");
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("command", "script"));
    assert!(response.usage.estimated && response.usage.input_tokens > 0 && response.usage.output_tokens > 0);
    assert_eq!(response.usage.cost_usd, 0.0);
}

#[tokio::test]
async fn stdout_is_streamed_as_it_comes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = Gate::new(dir.path(), "gate");
    let llm =
        pipe_script(dir.path(), &format!("cat >/dev/null; printf 'one '; read go < {}; printf 'two'", gate.path()));
    let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("started");
    // "two" is not written before the test has seen "one ".
    assert_eq!(next_delta(&mut stream).await, "one ");
    gate.open().await;
    let (deltas, done) = drain(stream).await;
    assert_eq!(deltas, vec!["two"]);
    assert_eq!(done.expect("done").content, "one two");
}

#[tokio::test]
async fn output_that_is_not_utf8_keeps_streaming() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (Gate::new(dir.path(), "first"), Gate::new(dir.path(), "second"));
    // \377 is never valid UTF-8; \303\251 is "é", cut in two by the second gate.
    let body = format!(
        r"cat >/dev/null; printf 'one\377'; read go < {}; printf 'two\303'; read go < {}; printf '\251!'",
        first.path(),
        second.path()
    );
    let llm = pipe_script(dir.path(), &body);
    let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("started");
    assert_eq!(next_delta(&mut stream).await, "one\u{fffd}");
    first.open().await;
    assert_eq!(next_delta(&mut stream).await, "two", "the first half of é waits for the second");
    second.open().await;
    let (deltas, done) = drain(stream).await;
    assert_eq!(deltas, vec!["é!"]);
    assert_eq!(done.expect("done").content, "one\u{fffd}twoé!");
}

#[tokio::test]
async fn json_is_asked_for_in_the_prompt_and_extracted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = r#"if grep -q '"required"'; then printf 'Here:\n```json\n{"goal":"g","steps":["a"]}\n```\n'; else echo no schema; fi"#;
    let llm = pipe_script(dir.path(), body);
    let reply = llm.json::<Plan>(request(), &CancellationToken::new()).await.expect("plan");
    assert_eq!(reply.value, Plan { goal: "g".into(), steps: vec!["a".into()] });
}

#[tokio::test]
async fn a_slow_program_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = pipe_script(dir.path(), "cat >/dev/null; sleep 300");
    let (req, cancel) = (request().with_timeout(Duration::from_millis(200)), CancellationToken::new());
    let err = tokio::time::timeout(EVENT_WAIT, llm.complete(&req, &cancel)).await.expect("the timeout ended the call");
    assert!(matches!(err, Err(LlmError::Timeout { after, .. }) if after == Duration::from_millis(200)), "{err:?}");
}

#[tokio::test]
async fn a_request_without_timeout_gets_request_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(vec![script(dir.path(), "cat >/dev/null; sleep 300").display().to_string()]);
    cfg.timeouts.request_ms = 300;
    let llm = aurora::llm::Llm::from_config(&cfg, &env).expect("valid").with_retry(RetryPolicy::none());
    let bare = LlmRequest::new("test.hello", "You are terse.", "Say hello");
    let cancel = CancellationToken::new();
    let err = tokio::time::timeout(EVENT_WAIT, llm.complete(&bare, &cancel))
        .await
        .expect("the default timeout ended the call");
    assert!(matches!(err, Err(LlmError::Timeout { after, .. }) if after == Duration::from_millis(300)), "{err:?}");
}

#[tokio::test]
async fn cancel_kills_the_program() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let llm = pipe_script(dir.path(), &format!("echo $$ > {}; printf started; sleep 300", pid_file.display()));
    let cancel = CancellationToken::new();
    let mut stream = llm.stream(&request(), &cancel).await.expect("started");
    assert_eq!(next_delta(&mut stream).await, "started");
    let pid = read_pid(&pid_file);
    assert!(!ended(&pid));
    cancel.cancel();
    assert!(matches!(next(&mut stream).await, Some(Err(LlmError::Cancelled))));
    // Killed and reaped before the error was returned.
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists(), "process {pid} still exists");
}

/// A script that starts a grandchild (`sleep`), records its pid, says "started" and waits for it.
fn with_grandchild(dir: &Path) -> (aurora::llm::Llm, PathBuf) {
    let pid_file = dir.join("grandchild");
    let body = format!("cat >/dev/null; sleep 300 & echo $! > {}; printf started; wait", pid_file.display());
    (pipe_script(dir, &body), pid_file)
}

#[tokio::test]
async fn cancel_kills_what_the_program_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (llm, pid_file) = with_grandchild(dir.path());
    let cancel = CancellationToken::new();
    let mut stream = llm.stream(&request(), &cancel).await.expect("started");
    assert_eq!(next_delta(&mut stream).await, "started");
    let grandchild = read_pid(&pid_file);
    assert!(!ended(&grandchild), "the grandchild runs");
    cancel.cancel();
    assert!(matches!(next(&mut stream).await, Some(Err(LlmError::Cancelled))));
    assert!(wait_ended(&grandchild).await, "grandchild {grandchild} outlived the cancel");
}

#[tokio::test]
async fn dropping_the_stream_kills_what_the_program_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (llm, pid_file) = with_grandchild(dir.path());
    let mut stream = llm.stream(&request(), &CancellationToken::new()).await.expect("started");
    assert_eq!(next_delta(&mut stream).await, "started");
    let grandchild = read_pid(&pid_file);
    assert!(!ended(&grandchild), "the grandchild runs");
    drop(stream);
    assert!(wait_ended(&grandchild).await, "grandchild {grandchild} outlived the dropped stream");
}

#[tokio::test]
async fn what_the_program_leaves_running_ends_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("leftover");
    let body = format!("cat >/dev/null; sleep 300 >/dev/null 2>&1 & echo $! > {}; printf done", pid_file.display());
    let llm = pipe_script(dir.path(), &body);
    let response = llm.complete(&request(), &CancellationToken::new()).await.expect("reply");
    assert_eq!(response.content, "done");
    let leftover = read_pid(&pid_file);
    assert!(wait_ended(&leftover).await, "{leftover} was left running");
}

#[tokio::test]
async fn endless_output_is_stopped_at_the_limit_and_the_program_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let llm = pipe_script(dir.path(), &format!("cat >/dev/null; echo $$ > {}; yes", pid_file.display()));
    let cancel = CancellationToken::new();
    let err = tokio::time::timeout(EVENT_WAIT * 3, llm.complete(&request(), &cancel)).await.expect("stopped");
    match err {
        Err(LlmError::ResponseTooLarge { provider, what, limit_bytes }) => {
            assert_eq!((provider.as_str(), what, limit_bytes), ("command", "the program's output", MAX_REPLY_BYTES));
        }
        other => panic!("expected ResponseTooLarge, got {other:?}"),
    }
    let pid = read_pid(&pid_file);
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists(), "process {pid} still exists");
}

#[tokio::test]
async fn a_failing_program_reports_its_exit_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let llm = pipe_script(dir.path(), "cat >/dev/null; echo 'unknown flag --x' >&2; exit 3");
    let err = llm.complete(&request(), &CancellationToken::new()).await.expect_err("exit 3");
    let message = err.to_string();
    assert!(message.contains("fake-llm.sh: exited with exit status: 3: unknown flag --x"), "{message}");
}

#[tokio::test]
async fn only_the_end_of_a_long_stderr_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = r"cat >/dev/null; head -c 3000000 /dev/zero | tr '\0' x >&2; echo 'the real error' >&2; exit 3";
    let llm = pipe_script(dir.path(), body);
    let err = llm.complete(&request(), &CancellationToken::new()).await.expect_err("exit 3");
    let LlmError::Command { message, .. } = &err else { panic!("{err:?}") };
    let stderr = message.strip_prefix("exited with exit status: 3: ").expect("the exit status first");
    assert_eq!(stderr.len(), 1999, "the last 2000 bytes, without the final newline");
    assert!(stderr.ends_with("xxxthe real error"), "{stderr}");
}

#[tokio::test]
async fn a_missing_program_is_named() {
    let llm = pipe(vec!["/nonexistent/claude".into(), "-p".into()]);
    let err = llm.complete(&request(), &CancellationToken::new()).await.expect_err("missing");
    assert!(err.to_string().starts_with("llm.command /nonexistent/claude: cannot start:"), "{err}");
}
