//! External agents: runs a user-configured command (spec/soar.md §8.4) with the task on stdin,
//! bounded in time and output, and ends its whole process group on timeout, cancellation or drop.
//! This is the only process SOAR ever starts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdout, Command};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Last bytes of stderr kept for the report of a failing agent (spec §8.4); the rest is read and
/// discarded, so a chatty program can neither block on a full pipe nor fill memory.
const STDERR_TAIL_BYTES: usize = 8 * 1024;
/// Between SIGTERM and SIGKILL on timeout or cancellation (spec §8.4).
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long stderr may stay open after the agent exited and its group was killed (a process that
/// left the group can hold it); the tail is only for the report, so this is short.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// One run of an external agent's command.
#[derive(Clone, Debug)]
pub struct ExternalRun {
    /// argv: the program, then its arguments. Run directly, never through a shell.
    pub command: Vec<String>,
    /// The working directory (the workspace root).
    pub cwd: PathBuf,
    /// Added to the inherited environment (e.g. `AURORA_QUERY_ID`, `AURORA_SUBGOAL_ID`).
    pub env: BTreeMap<String, String>,
    /// Written to the program as UTF-8, then closed.
    pub stdin: String,
    pub timeout: Duration,
    /// Stdout beyond this many bytes ends the run with [`ExternalOutcome::OutputTooLarge`].
    pub max_output_bytes: u64,
}

/// How a run ended. Each stderr tail holds at most the last 8 KiB, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalOutcome {
    /// Exit status 0. `stdout` is the whole output, invalid UTF-8 replaced by U+FFFD.
    Exited {
        stdout: String,
        stderr_tail: String,
    },
    /// A non-zero exit (`code`), or killed by a signal (`code: None`).
    Failed {
        code: Option<i32>,
        stderr_tail: String,
    },
    TimedOut,
    Cancelled,
    OutputTooLarge,
    SpawnFailed(String),
}

/// Why a run stopped before the program exited on its own.
enum Stop {
    TimedOut,
    Cancelled,
    TooLarge,
    Io(String),
}

/// Runs the command to completion, timeout or cancellation.
///
/// The program gets its own process group. On timeout or cancellation the group receives SIGTERM;
/// once the program has exited, or [`TERM_GRACE`] has passed, the group receives SIGKILL. When the
/// program exits on its own, whatever it left running in the group is killed too. If this future is dropped, the group is
/// killed at once. Stdin is written concurrently with reading, so a program that never reads it
/// cannot block the run.
#[tracing::instrument(skip_all, fields(program = spec.command.first().map(String::as_str).unwrap_or("")))]
pub async fn run(spec: ExternalRun, cancel: &CancellationToken) -> ExternalOutcome {
    let Some(program) = spec.command.first().filter(|p| !p.is_empty()) else {
        return ExternalOutcome::SpawnFailed(
            "the agent's command is empty; set it to a program and its arguments".into(),
        );
    };
    if cancel.is_cancelled() {
        return ExternalOutcome::Cancelled;
    }
    let deadline = Instant::now() + spec.timeout;
    let mut child = match Command::new(program)
        .args(&spec.command[1..])
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that killing the group also ends what it started (a shell's children,
        // an agent's tools); kill-on-drop covers the program itself.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return ExternalOutcome::SpawnFailed(format!("cannot start {program}: {e}")),
    };
    let mut group = Group { id: child.id().and_then(|pid| i32::try_from(pid).ok()), tasks: Vec::new() };
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        group.kill();
        let _ = child.wait().await;
        return ExternalOutcome::SpawnFailed(format!("{program} started without its pipes"));
    };
    tracing::debug!(pid = ?group.id, stdin_bytes = spec.stdin.len(), "external agent started");
    let input = spec.stdin;
    // A program that exits or closes stdin early makes this write fail, which is not an error.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    group.tasks.push(writer.abort_handle());
    let stderr = tokio::spawn(crate::llm::pipe::stderr_tail(stderr, STDERR_TAIL_BYTES));
    group.tasks.push(stderr.abort_handle());

    let finished = {
        let reading = read_limited(stdout, spec.max_output_bytes);
        let group = &mut group;
        let waiting = async {
            let status = child.wait().await.map_err(|e| Stop::Io(format!("waiting for {program}: {e}")));
            // What the program left running ends with it; that also closes the pipes it inherited.
            group.kill();
            status
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(Stop::Cancelled),
            _ = tokio::time::sleep_until(deadline) => Err(Stop::TimedOut),
            r = async { tokio::try_join!(reading, waiting) } => r,
        }
    };
    let outcome = match finished {
        Ok((stdout, status)) => {
            let stderr_tail =
                tokio::time::timeout(STDERR_DRAIN, stderr).await.ok().and_then(Result::ok).unwrap_or_default();
            exited(status, &stdout, stderr_tail)
        }
        Err(stop) => {
            let outcome = match stop {
                Stop::TimedOut => ExternalOutcome::TimedOut,
                Stop::Cancelled => ExternalOutcome::Cancelled,
                Stop::TooLarge => ExternalOutcome::OutputTooLarge,
                Stop::Io(message) => ExternalOutcome::Failed { code: None, stderr_tail: message },
            };
            if matches!(outcome, ExternalOutcome::TimedOut | ExternalOutcome::Cancelled) {
                group.signal(libc::SIGTERM);
                // The program gets the grace to exit; a program that wants its children to finish
                // cleanly waits for them before it exits. Zombies are not waited for: their reaper
                // (init, or a container's) may take its time, and there is nothing left to end.
                let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
            }
            group.kill();
            let _ = child.start_kill();
            let _ = child.wait().await;
            outcome
        }
    };
    tracing::debug!(outcome = outcome_name(&outcome), "external agent finished");
    outcome
}

fn exited(status: ExitStatus, stdout: &[u8], stderr_tail: String) -> ExternalOutcome {
    if status.success() {
        ExternalOutcome::Exited { stdout: String::from_utf8_lossy(stdout).into_owned(), stderr_tail }
    } else {
        ExternalOutcome::Failed { code: status.code(), stderr_tail }
    }
}

fn outcome_name(outcome: &ExternalOutcome) -> &'static str {
    match outcome {
        ExternalOutcome::Exited { .. } => "exited",
        ExternalOutcome::Failed { .. } => "failed",
        ExternalOutcome::TimedOut => "timed_out",
        ExternalOutcome::Cancelled => "cancelled",
        ExternalOutcome::OutputTooLarge => "output_too_large",
        ExternalOutcome::SpawnFailed(_) => "spawn_failed",
    }
}

/// Stdout to its end, or [`Stop::TooLarge`] as soon as it passes `max_bytes`.
async fn read_limited(mut stdout: ChildStdout, max_bytes: u64) -> Result<Vec<u8>, Stop> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stdout.read(&mut buf).await.map_err(|e| Stop::Io(format!("reading stdout: {e}")))?;
        if n == 0 {
            return Ok(out);
        }
        if (out.len() + n) as u64 > max_bytes {
            return Err(Stop::TooLarge);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// The program's process group and the tasks feeding and draining its pipes. Dropping it kills the
/// group and stops the tasks, so a dropped run leaves nothing behind.
struct Group {
    /// The group id (the program's pid, as it leads the group); `None` once killed.
    id: Option<i32>,
    tasks: Vec<AbortHandle>,
}

impl Group {
    fn signal(&self, signal: libc::c_int) {
        if let Some(id) = self.id {
            // SAFETY: killpg takes plain integers and touches no memory; `id` is the group this run
            // created for the program (`process_group(0)`), a pid, so never 0 or negative.
            let _ = unsafe { libc::killpg(id, signal) };
        }
    }

    /// Whether any process is left in the group.
    fn alive(&self) -> bool {
        // SAFETY: as in `signal`; signal 0 only checks that the group exists.
        self.id.is_some_and(|id| unsafe { libc::killpg(id, 0) } == 0)
    }

    /// SIGKILLs the group, once. The group outlives its leader while any member is left, so its id
    /// cannot have been reused while there is something to kill.
    fn kill(&mut self) {
        if self.alive() {
            self.signal(libc::SIGKILL);
        }
        self.id = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;

    fn sh(script: &str) -> ExternalRun {
        ExternalRun {
            command: vec!["sh".into(), "-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: BTreeMap::new(),
            stdin: String::new(),
            timeout: Duration::from_secs(10),
            max_output_bytes: 1024 * 1024,
        }
    }

    /// Whether `pid` is a live process (a zombie waiting for its parent counts as gone).
    fn running(pid: i32) -> bool {
        // SAFETY: kill with signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    /// Reads a pid the script wrote to `path`, waiting for it to appear.
    async fn read_pid(path: &std::path::Path) -> i32 {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no pid in {}", path.display());
    }

    #[tokio::test]
    async fn stdin_comes_back_on_stdout() {
        let mut spec = sh("cat");
        spec.command = vec!["cat".into()];
        spec.stdin = "héllo\n{\"summary\": \"x\"}\n".into();
        let out = run(spec, &CancellationToken::new()).await;
        assert_eq!(
            out,
            ExternalOutcome::Exited { stdout: "héllo\n{\"summary\": \"x\"}\n".into(), stderr_tail: String::new() }
        );
    }

    #[tokio::test]
    async fn cwd_and_env_are_passed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut spec = sh("pwd; printf '%s' \"$AURORA_SUBGOAL_ID\"");
        spec.cwd = dir.path().to_path_buf();
        spec.env.insert("AURORA_SUBGOAL_ID".into(), "sg-2".into());
        let ExternalOutcome::Exited { stdout, .. } = run(spec, &CancellationToken::new()).await else {
            panic!("the script exits 0");
        };
        let cwd = dir.path().canonicalize().expect("canonical");
        assert_eq!(stdout, format!("{}\nsg-2", cwd.display()));
    }

    #[tokio::test]
    async fn a_program_that_ignores_stdin_does_not_block_the_run() {
        let mut spec = sh("echo done");
        spec.stdin = "x".repeat(4 * 1024 * 1024);
        let out = run(spec, &CancellationToken::new()).await;
        assert_eq!(out, ExternalOutcome::Exited { stdout: "done\n".into(), stderr_tail: String::new() });
    }

    #[tokio::test]
    async fn non_zero_exit_keeps_the_stderr_tail() {
        let out = run(sh("echo first >&2; echo 'it broke' >&2; exit 3"), &CancellationToken::new()).await;
        assert_eq!(out, ExternalOutcome::Failed { code: Some(3), stderr_tail: "first\nit broke".into() });

        let out = run(sh("kill -9 $$"), &CancellationToken::new()).await;
        assert_eq!(out, ExternalOutcome::Failed { code: None, stderr_tail: String::new() });
    }

    #[tokio::test]
    async fn stderr_keeps_only_its_last_8_kib() {
        let out =
            run(sh("head -c 20000 /dev/zero | tr '\\0' a >&2; echo END >&2; exit 1"), &CancellationToken::new()).await;
        let ExternalOutcome::Failed { stderr_tail, .. } = out else { panic!("exit 1 fails") };
        assert_eq!(stderr_tail.len(), STDERR_TAIL_BYTES - 1, "the final newline is trimmed");
        assert!(stderr_tail.ends_with("aaaEND"));
    }

    #[tokio::test]
    async fn the_stderr_tail_starts_on_a_character() {
        let out = run(sh("yes é | head -c 30000 >&2; exit 1"), &CancellationToken::new()).await;
        let ExternalOutcome::Failed { stderr_tail, .. } = out else { panic!("exit 1 fails") };
        assert!(
            stderr_tail.starts_with('é') && !stderr_tail.contains('\u{fffd}'),
            "{:?}",
            stderr_tail.chars().take(5).collect::<String>()
        );
    }

    #[tokio::test]
    async fn a_program_that_ignores_sigterm_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("pid");
        let mut spec = sh(&format!("trap '' TERM; echo $$ > '{}'; sleep 30", pid_file.display()));
        spec.timeout = Duration::from_millis(300);
        let started = StdInstant::now();
        let out = run(spec, &CancellationToken::new()).await;
        let took = started.elapsed();
        assert_eq!(out, ExternalOutcome::TimedOut);
        assert!(took >= TERM_GRACE, "SIGKILL came before the grace: {took:?}");
        assert!(took < Duration::from_millis(3500), "took {took:?}");
        assert!(!running(read_pid(&pid_file).await));
    }

    #[tokio::test]
    async fn a_timeout_ends_a_well_behaved_program_at_once() {
        let mut spec = sh("sleep 30");
        spec.timeout = Duration::from_millis(100);
        let started = StdInstant::now();
        assert_eq!(run(spec, &CancellationToken::new()).await, ExternalOutcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn cancellation_ends_the_program_and_its_children() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (leader, worker) = (dir.path().join("leader"), dir.path().join("worker"));
        let spec = sh(&format!("sleep 30 & echo $! > '{}'; echo $$ > '{}'; wait", worker.display(), leader.display()));
        let cancel = CancellationToken::new();
        let run = tokio::spawn({
            let cancel = cancel.clone();
            async move { run(spec, &cancel).await }
        });
        let (leader, worker) = (read_pid(&leader).await, read_pid(&worker).await);
        assert!(running(leader) && running(worker));
        cancel.cancel();
        let out = tokio::time::timeout(Duration::from_secs(5), run).await.expect("ends promptly").expect("no panic");
        assert_eq!(out, ExternalOutcome::Cancelled);
        assert!(!running(leader), "the program is gone");
        for _ in 0..100 {
            if !running(worker) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!running(worker), "its child is gone");
    }

    #[tokio::test]
    async fn a_dropped_run_kills_the_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let worker = dir.path().join("worker");
        let spec = sh(&format!("trap '' TERM; sleep 30 & echo $! > '{}'; wait", worker.display()));
        let cancel = CancellationToken::new();
        let dropped = tokio::time::timeout(Duration::from_millis(300), run(spec, &cancel)).await;
        assert!(dropped.is_err(), "the run was still going");
        let worker = read_pid(&worker).await;
        for _ in 0..100 {
            if !running(worker) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!running(worker), "the group was killed on drop");
    }

    #[tokio::test]
    async fn output_beyond_the_limit_kills_the_program() {
        let out = run(sh("yes | head -c 2000000"), &CancellationToken::new()).await;
        assert_eq!(out, ExternalOutcome::OutputTooLarge);
        // Exactly at the limit is fine.
        let mut spec = sh("head -c 1000 /dev/zero");
        spec.max_output_bytes = 1000;
        assert!(
            matches!(run(spec, &CancellationToken::new()).await, ExternalOutcome::Exited { stdout, .. } if stdout.len() == 1000)
        );
    }

    #[tokio::test]
    async fn a_missing_program_or_empty_command_fails_to_spawn() {
        let mut spec = sh("");
        spec.command = vec!["/nonexistent/aurora-no-such-agent".into(), "-p".into()];
        let out = run(spec.clone(), &CancellationToken::new()).await;
        assert!(
            matches!(&out, ExternalOutcome::SpawnFailed(m) if m.starts_with("cannot start /nonexistent/aurora-no-such-agent")),
            "{out:?}"
        );
        spec.command.clear();
        assert!(matches!(run(spec, &CancellationToken::new()).await, ExternalOutcome::SpawnFailed(_)));
    }

    #[tokio::test]
    async fn an_already_cancelled_token_starts_nothing() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(run(sh("exit 0"), &cancel).await, ExternalOutcome::Cancelled);
    }
}
