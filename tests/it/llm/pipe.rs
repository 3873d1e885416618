//! The `command` provider against small shell scripts: prompt on stdin, reply on stdout, streaming, JSON,
//! timeout, kill on cancel, and failures that name the program.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use aurora::llm::{LlmClient, LlmConfig, LlmError, ProviderKind, RetryPolicy, StreamEvent};

use super::{Plan, drain, env, request};

/// Writes an executable `/bin/sh` script into `dir`.
fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-llm.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn pipe(argv: Vec<String>) -> aurora::llm::Llm {
    let cfg =
        LlmConfig { provider: ProviderKind::Command, command: argv, model: "script".into(), ..LlmConfig::default() };
    aurora::llm::Llm::from_config(&cfg, &env).expect("valid command config").with_retry(RetryPolicy::none())
}

fn pipe_script(dir: &Path, body: &str) -> aurora::llm::Llm {
    pipe(vec![script(dir, body).display().to_string()])
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
    let llm = pipe_script(dir.path(), "cat >/dev/null; printf 'one '; sleep 0.1; printf 'two'");
    let stream = llm.stream(&request(), &CancellationToken::new()).await.expect("started");
    let (deltas, done) = drain(stream).await;
    assert_eq!(deltas, vec!["one ", "two"]);
    assert_eq!(done.expect("done").content, "one two");
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
    let llm = pipe_script(dir.path(), "exec sleep 5");
    let started = Instant::now();
    let err = llm.complete(&request().with_timeout(Duration::from_millis(200)), &CancellationToken::new()).await;
    assert!(matches!(err, Err(LlmError::Timeout { .. })), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn cancel_kills_the_program() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let llm = pipe_script(dir.path(), &format!("echo $$ > {}; printf started; exec sleep 30", pid_file.display()));
    let cancel = CancellationToken::new();
    let mut stream = llm.stream(&request(), &cancel).await.expect("started");
    assert_eq!(stream.next().await.expect("event").expect("delta"), StreamEvent::Delta("started".into()));
    let pid = std::fs::read_to_string(&pid_file).expect("pid written").trim().to_owned();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    cancel.cancel();
    assert!(matches!(stream.next().await, Some(Err(LlmError::Cancelled))));
    // Killed and reaped before the error was returned.
    assert!(!proc_dir.exists(), "process {pid} still exists");
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
async fn a_missing_program_is_named() {
    let llm = pipe(vec!["/nonexistent/claude".into(), "-p".into()]);
    let err = llm.complete(&request(), &CancellationToken::new()).await.expect_err("missing");
    assert!(err.to_string().starts_with("llm.command /nonexistent/claude: cannot start:"), "{err}");
}
