//! Runs a user-configured external agent (spec/soar.md §8.4): argv without a shell, the task on
//! stdin, JSON or text on stdout, in its own process group that is terminated (SIGTERM, then SIGKILL
//! after 2 s) on timeout, cancellation, or when the future is dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Grace between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// stderr kept for error messages.
const STDERR_TAIL: usize = 8 * 1024;

pub struct ExternalRun {
    pub command: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub stdin: String,
    pub timeout: Duration,
    pub max_output_bytes: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ExternalOutcome {
    /// Exit status 0.
    Exited {
        stdout: String,
        stderr_tail: String,
    },
    /// A non-zero status, or killed by a signal (`code` None).
    Failed {
        code: Option<i32>,
        stderr_tail: String,
    },
    TimedOut,
    Cancelled,
    OutputTooLarge,
    SpawnFailed(String),
}

/// Kills the process group when dropped, unless disarmed after the process was reaped.
struct Group(Option<i32>);

impl Group {
    fn signal(&self, sig: i32) {
        if let Some(pgid) = self.0.filter(|p| *p > 0) {
            // SAFETY: killpg takes plain integers and touches no memory; `pgid` is the id of the group
            // this module created for the agent (`process_group(0)`), never 0 or negative.
            let _ = unsafe { libc::killpg(pgid, sig) };
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Runs the agent to its end, its timeout, or cancellation.
pub async fn run(spec: ExternalRun, cancel: &CancellationToken) -> ExternalOutcome {
    let Some((program, args)) = spec.command.split_first() else {
        return ExternalOutcome::SpawnFailed("the agent has no command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ExternalOutcome::SpawnFailed(format!("{program}: {e}")),
    };
    let group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let input = spec.stdin.into_bytes();
    let max = spec.max_output_bytes;
    let work = async {
        let feed = async {
            if let Some(mut s) = stdin.take() {
                // A program that does not read its input must not block us: errors (EPIPE) are fine.
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
        };
        let read_out = async {
            let mut out = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => return Ok(out),
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.len() as u64 > max {
                            // Stop the agent now: its other pipe would otherwise never close.
                            group.signal(libc::SIGKILL);
                            return Err(());
                        }
                    }
                }
            }
        };
        let read_err = async {
            let mut err = Vec::new();
            let mut buf = [0u8; 8 * 1024];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => return err,
                    Ok(n) => {
                        err.extend_from_slice(&buf[..n]);
                        if err.len() > 4 * STDERR_TAIL {
                            err.drain(..err.len() - STDERR_TAIL);
                        }
                    }
                }
            }
        };
        let ((), out, err) = tokio::join!(feed, read_out, read_err);
        let Ok(out) = out else { return ExternalOutcome::OutputTooLarge };
        match child.wait().await {
            Ok(status) if status.success() => {
                ExternalOutcome::Exited { stdout: String::from_utf8_lossy(&out).into_owned(), stderr_tail: tail(&err) }
            }
            Ok(status) => ExternalOutcome::Failed { code: status.code(), stderr_tail: tail(&err) },
            Err(e) => ExternalOutcome::Failed { code: None, stderr_tail: e.to_string() },
        }
    };
    let outcome = tokio::select! {
        o = tokio::time::timeout(spec.timeout, work) => o.unwrap_or(ExternalOutcome::TimedOut),
        () = cancel.cancelled() => ExternalOutcome::Cancelled,
    };
    match outcome {
        ExternalOutcome::Exited { .. } | ExternalOutcome::Failed { .. } => {
            // Reaped; children it left behind still get the group's SIGKILL on drop.
        }
        _ => {
            group.signal(libc::SIGTERM);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let deadline = tokio::time::Instant::now() + KILL_GRACE;
            // The leader was not reaped here: poll its group until it is gone or the grace ends.
            while tokio::time::Instant::now() < deadline && group_alive(group.0) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(group);
    outcome
}

fn group_alive(pgid: Option<i32>) -> bool {
    // SAFETY: signal 0 only checks existence; plain integers.
    pgid.is_some_and(|p| p > 0 && unsafe { libc::killpg(p, 0) } == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str], stdin: &str, timeout: Duration) -> ExternalRun {
        ExternalRun {
            command: args.iter().map(|a| (*a).to_owned()).collect(),
            cwd: std::env::temp_dir(),
            env: BTreeMap::from([("AURORA_SUBGOAL_ID".to_owned(), "sg-1".to_owned())]),
            stdin: stdin.into(),
            timeout,
            max_output_bytes: 1024 * 1024,
        }
    }

    #[tokio::test]
    async fn stdin_goes_in_and_stdout_comes_back() {
        let o = run(
            spec(&["sh", "-c", "cat; echo \" $AURORA_SUBGOAL_ID\""], "task", Duration::from_secs(5)),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(o, ExternalOutcome::Exited { stdout: "task sg-1\n".into(), stderr_tail: String::new() });
    }

    #[tokio::test]
    async fn a_non_zero_exit_keeps_the_stderr_tail() {
        let o =
            run(spec(&["sh", "-c", "echo boom >&2; exit 3"], "", Duration::from_secs(5)), &CancellationToken::new())
                .await;
        assert_eq!(o, ExternalOutcome::Failed { code: Some(3), stderr_tail: "boom\n".into() });
    }

    #[tokio::test]
    async fn a_timeout_kills_even_a_process_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("trap '' TERM; echo $$ > {}; sleep 30", pid_file.display());
        let started = std::time::Instant::now();
        let o = run(spec(&["sh", "-c", &script], "", Duration::from_millis(300)), &CancellationToken::new()).await;
        assert_eq!(o, ExternalOutcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // SAFETY: existence check of a pid.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the agent is gone");
    }

    #[tokio::test]
    async fn cancellation_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        let pf = pid_file.clone();
        tokio::spawn(async move {
            while !pf.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c2.cancel();
        });
        let o = run(spec(&["sh", "-c", &script], "", Duration::from_secs(20)), &cancel).await;
        assert_eq!(o, ExternalOutcome::Cancelled);
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // SAFETY: existence check of a pid.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the grandchild is gone too");
    }

    #[tokio::test]
    async fn too_much_output_and_a_missing_program_are_failures() {
        let mut s = spec(&["sh", "-c", "yes | head -c 2000000"], "", Duration::from_secs(10));
        s.max_output_bytes = 1024 * 1024;
        assert_eq!(run(s, &CancellationToken::new()).await, ExternalOutcome::OutputTooLarge);
        let o = run(spec(&["/nonexistent/agent"], "", Duration::from_secs(1)), &CancellationToken::new()).await;
        assert!(matches!(o, ExternalOutcome::SpawnFailed(_)), "{o:?}");
    }
}
