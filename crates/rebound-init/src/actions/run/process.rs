//! Running `init.run` commands in their own process group, so that a
//! cancelled or timed-out attempt can kill everything the command started.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{Command, Run, ellipsize};
use crate::actions::{ActionContext, ActionError, Stream, poll, validate};

/// How long a process group gets between SIGTERM and SIGKILL (the drop of
/// a cancelled attempt blocks at most this long).
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(1);
/// How much of the command's last output line a failure message shows.
const LAST_LINE_CHARS: usize = 200;
/// How long output is still read after the command exited (a background
/// grandchild may hold the pipes open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// Kills the process group when dropped while armed: the attempt future was
/// dropped (cancellation) or returned early, so nothing may outlive it.
struct GroupGuard {
    pgid: Pid,
    armed: bool,
}

impl GroupGuard {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let pgid = self.pgid;
        if killpg(pgid, Signal::SIGTERM).is_err() {
            return; // the group is already gone
        }
        // Wait here, synchronously, for the group to go, and SIGKILL what
        // ignored SIGTERM. A watcher thread would not do: the usual reason
        // for dropping an attempt is that rebound is about to exit (SIGTERM,
        // a failed init), and the thread would die with the process, leaving
        // the stubborn child behind. Well-behaved children exit within
        // milliseconds; at worst this blocks for KILL_GRACE.
        let step = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        while waited < KILL_GRACE {
            if !group_has_live_members(pgid) {
                return;
            }
            std::thread::sleep(step);
            waited += step;
        }
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// Whether any process of the group is alive (zombies do not count).
fn group_has_live_members(pgid: Pid) -> bool {
    if killpg(pgid, None).is_err() {
        return false;
    }
    // killpg(0) also succeeds for a group of zombies waiting to be reaped;
    // look at /proc to tell them apart.
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let want = pgid.as_raw().to_string();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str() else { continue };
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        if pgrp == Some(want.as_str()) && state != Some("Z") && state != Some("X") {
            return true;
        }
    }
    false
}

fn build(run: &Run) -> Result<tokio::process::Command, ActionError> {
    let mut cmd = match &run.command {
        Command::Shell(script) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(script);
            c
        }
        Command::Exec(argv) => {
            // The spec reader rejects an empty array; a library user may
            // still build one.
            let Some((program, args)) = argv.split_first() else {
                return Err(ActionError::permanent(
                    "init.run: the command array is empty",
                ));
            };
            let mut c = tokio::process::Command::new(program);
            c.args(args);
            c
        }
    };
    cmd.envs(&run.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = &run.cwd {
        cmd.current_dir(dir);
    }
    Ok(cmd)
}

fn spawn_error(run: &Run, e: &io::Error) -> ActionError {
    let what = run.describe();
    let cwd = run
        .cwd
        .as_ref()
        .map(|d| format!(" (cwd {})", d.display()))
        .unwrap_or_default();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => {
            ActionError::permanent(format!("cannot start {what}{cwd}: {e}"))
        }
        _ => ActionError::transient(format!("cannot start {what}{cwd}: {e}")),
    }
}

/// Where a command's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// Line by line to [`ActionContext::output`] (`init.run`).
    Stream,
    /// Kept, up to [`CAPTURE_LIMIT`] bytes per stream, in [`Finished`]
    /// (`init.wait_exec`, whose command runs again and again).
    Capture,
}

/// At most this much of each stream is kept by [`Output::Capture`].
pub(crate) const CAPTURE_LIMIT: usize = 1 << 20;

/// How a command that ran to its end ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its exit code (128+N for signal N).
    pub code: i32,
    /// Its last non-blank line, stderr's before stdout's.
    pub last_line: Option<String>,
    /// What it printed on stdout then stderr ([`Output::Capture`] only).
    pub captured: String,
}

async fn pump<R: AsyncRead + Unpin>(
    reader: Option<R>,
    ctx: &ActionContext,
    stream: Stream,
    mode: Output,
    last: &mut Option<String>,
    captured: &mut String,
) {
    let Some(reader) = reader else { return };
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if mode == Output::Capture {
                    if captured.len() < CAPTURE_LIMIT {
                        captured.push_str(&line);
                    }
                } else {
                    (ctx.output)(&ctx.step_id, stream, line.trim_end_matches(['\n', '\r']));
                }
                let line = line.trim_end_matches(['\n', '\r']);
                if !line.trim().is_empty() {
                    *last = Some(line.to_owned());
                }
            }
        }
    }
}

/// The exit code as a shell reports it: the code, or 128+N for signal N.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Runs the command once: streams its output, fails on a non-zero exit,
/// kills its process group on timeout or when this future is dropped.
pub(crate) async fn run(run: &Run, ctx: &ActionContext) -> Result<(), ActionError> {
    let finished = run_once(run, ctx, Output::Stream).await?;
    if finished.code == 0 {
        return Ok(());
    }
    let code = finished.code;
    let hint = finished
        .last_line
        .map(|l| format!(": {}", shown_line(&l)))
        .unwrap_or_default();
    Err(
        ActionError::transient(format!("{} exited with code {code}{hint}", run.describe()))
            .with_exit_code(code),
    )
}

/// `line` cut for messages, as [`run`] shows a command's last line, with
/// the password of a URL in it replaced by `***` (a command that echoes
/// its connection string).
pub(crate) fn shown_line(line: &str) -> String {
    ellipsize(&validate::redacted_command(line.trim()), LAST_LINE_CHARS)
}

/// Runs the command once in its own process group, to its end: its exit
/// code and output (see [`Output`]). Fails only when it cannot be started
/// or waited for, or `run.timeout` ran out; the group is killed then, and
/// when this future is dropped.
pub(crate) async fn run_once(
    run: &Run,
    ctx: &ActionContext,
    mode: Output,
) -> Result<Finished, ActionError> {
    let mut child = build(run)?.spawn().map_err(|e| spawn_error(run, &e))?;
    let Some(pid) = child.id() else {
        return Err(ActionError::transient(format!(
            "{} exited before it could be watched",
            run.describe()
        )));
    };
    let pgid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    let mut guard = GroupGuard { pgid, armed: true };

    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut last_out = None;
    let mut last_err = None;
    let mut captured_out = String::new();
    let mut captured_err = String::new();

    let work = async {
        let out = pump(
            stdout,
            ctx,
            Stream::Stdout,
            mode,
            &mut last_out,
            &mut captured_out,
        );
        let err = pump(
            stderr,
            ctx,
            Stream::Stderr,
            mode,
            &mut last_err,
            &mut captured_err,
        );
        let output = async { tokio::join!(out, err) };
        tokio::pin!(output);
        let status = tokio::select! {
            status = child.wait() => {
                // Let the readers finish what the command printed, but do
                // not hang on pipes a background grandchild keeps open.
                let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut output).await;
                status
            }
            ((), ()) = &mut output => child.wait().await,
        };
        status
    };

    let status = match poll::within(run.timeout, work).await {
        Ok(status) => status,
        Err(limit) => {
            // `guard` kills the group when it goes out of scope.
            return Err(ActionError::timed_out(format!(
                "{} still running after {}; its process group was killed",
                run.describe(),
                humantime::format_duration(limit)
            )));
        }
    };
    let status = status.map_err(|e| {
        ActionError::transient(format!("waiting for {} failed: {e}", run.describe()))
    })?;
    // The command itself finished: whatever it left running in the
    // background (a daemon it started on purpose) is not ours to kill.
    guard.disarm();
    captured_out.push_str(&captured_err);
    Ok(Finished {
        code: exit_code(status),
        last_line: last_err.or(last_out),
        captured: captured_out,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::actions::ActionErrorKind;

    type Lines = Arc<Mutex<Vec<(String, Stream, String)>>>;

    fn ctx() -> (ActionContext, Lines) {
        let lines: Lines = Arc::default();
        let sink = lines.clone();
        let ctx = ActionContext::new(
            "step",
            Arc::new(move |id, stream, line| {
                sink.lock()
                    .unwrap()
                    .push((id.to_owned(), stream, line.to_owned()));
            }),
        );
        (ctx, lines)
    }

    fn shell(script: &str) -> Run {
        Run::shell(script)
    }

    /// Alive = exists and is not a zombie.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next());
                !matches!(state, Some("Z") | Some("X"))
            }
            Err(_) => false,
        }
    }

    async fn read_pids(path: &std::path::Path, n: usize) -> Vec<i32> {
        for _ in 0..500 {
            if let Ok(text) = std::fs::read_to_string(path) {
                let pids: Vec<i32> = text
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect();
                if pids.len() >= n {
                    return pids;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the command never wrote its pids to {}", path.display());
    }

    async fn wait_dead(pids: &[i32]) {
        // Bounded wait for the kernel to finish off the group; not a timing
        // check.
        for _ in 0..500 {
            if pids.iter().all(|&p| !alive(p)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let survivors: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
        panic!("orphans survived: {survivors:?}");
    }

    #[tokio::test]
    async fn streams_lines_with_the_step_id() {
        let (ctx, lines) = ctx();
        let mut r = shell("echo one; echo two >&2; printf 'no newline'");
        r.env.insert("GREETING".into(), "hi".into());
        r.command = Command::Shell("echo $GREETING; echo two >&2; printf 'last'".into());
        run(&r, &ctx).await.unwrap();
        let got = lines.lock().unwrap().clone();
        assert!(
            got.contains(&("step".into(), Stream::Stdout, "hi".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("step".into(), Stream::Stderr, "two".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("step".into(), Stream::Stdout, "last".into())),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn exec_runs_without_a_shell_in_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, lines) = ctx();
        let r = Run {
            command: Command::Exec(vec!["pwd".into()]),
            env: BTreeMap::new(),
            cwd: Some(dir.path().to_owned()),
            timeout: None,
        };
        run(&r, &ctx).await.unwrap();
        let want = dir.path().canonicalize().unwrap().display().to_string();
        assert_eq!(lines.lock().unwrap()[0].2, want);
        // No shell: `$HOME` stays literal.
        let r = Run {
            command: Command::Exec(vec!["echo".into(), "$HOME".into()]),
            ..r
        };
        run(&r, &ctx).await.unwrap();
        assert_eq!(lines.lock().unwrap()[1].2, "$HOME");
    }

    #[tokio::test]
    async fn non_zero_exit_is_transient_with_code() {
        let (ctx, _) = ctx();
        let err = run(&shell("echo boom >&2; exit 7"), &ctx)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ActionErrorKind::Transient);
        assert_eq!(err.exit_code(), Some(7));
        assert!(
            err.to_string().contains("exited with code 7: boom"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_program_is_permanent() {
        let (ctx, _) = ctx();
        let r = Run {
            command: Command::Exec(vec!["/nonexistent/rebound-test-prog".into()]),
            env: BTreeMap::new(),
            cwd: None,
            timeout: None,
        };
        let err = run(&r, &ctx).await.unwrap_err();
        assert_eq!(err.kind(), ActionErrorKind::Permanent);
        assert!(
            err.to_string().contains("/nonexistent/rebound-test-prog"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_empty_command_array_is_an_error_not_a_panic() {
        let (ctx, _) = ctx();
        let r = Run {
            command: Command::Exec(Vec::new()),
            env: BTreeMap::new(),
            cwd: None,
            timeout: None,
        };
        let err = run(&r, &ctx).await.unwrap_err();
        assert_eq!(err.kind(), ActionErrorKind::Permanent);
        assert!(err.to_string().contains("command array is empty"), "{err}");
    }

    // A child that ignores SIGTERM and its grandchild must both die when the
    // attempt is dropped (ZLayer left such processes running).
    #[tokio::test]
    async fn dropping_the_attempt_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            "trap '' TERM; sleep 1000 & echo $$ $! > {}; wait",
            pids.display()
        );
        let (ctx, _) = ctx();
        let r = shell(&script);
        // Boxed so that `drop` below really drops the future.
        let mut attempt = Box::pin(run(&r, &ctx));
        let pids = tokio::select! {
            _ = &mut attempt => panic!("the command ended on its own"),
            pids = read_pids(&pids, 2) => pids,
        };
        assert!(pids.iter().all(|&p| alive(p)));
        drop(attempt);
        wait_dead(&pids).await;
    }

    // Regression: the SIGKILL for a child that ignores SIGTERM used to be
    // sent from a watcher thread, which died with the process when rebound
    // exited right after cancelling (SIGTERM to `rebound init`), leaving the
    // child behind. The child copy of this test cancels and exits at once.
    #[test]
    fn no_orphans_when_the_process_exits_right_after_cancelling() {
        const NAME: &str = "actions::run::process::tests::no_orphans_when_the_process_exits_right_after_cancelling";
        if let Some(pids) = std::env::var_os("REBOUND_TEST_PIDS_FILE") {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let script = format!(
                    "trap '' TERM; sleep 1000 & echo $$ $! > {}; wait",
                    std::path::Path::new(&pids).display()
                );
                let (ctx, _) = ctx();
                let r = shell(&script);
                let mut attempt = Box::pin(run(&r, &ctx));
                tokio::select! {
                    _ = &mut attempt => panic!("the command ended on its own"),
                    _ = read_pids(std::path::Path::new(&pids), 2) => {}
                }
                drop(attempt);
            });
            std::process::exit(0);
        }
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
            .env("REBOUND_TEST_PIDS_FILE", &pids)
            .status()
            .unwrap();
        assert!(status.success());
        let text = std::fs::read_to_string(&pids).unwrap();
        let pids: Vec<i32> = text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        assert_eq!(pids.len(), 2, "{text:?}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(wait_dead(&pids));
    }

    #[tokio::test]
    async fn with_timeout_kills_the_group_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let mut r = shell(&format!(
            "trap '' TERM; sleep 1000 & echo $$ $! > {}; wait",
            pids.display()
        ));
        r.timeout = Some(Duration::from_millis(300));
        let (ctx, _) = ctx();
        let err = run(&r, &ctx).await.unwrap_err();
        assert!(err.is_timeout());
        assert!(
            err.to_string().contains("still running after 300ms"),
            "{err}"
        );
        let pids = read_pids(&pids, 2).await;
        wait_dead(&pids).await;
    }

    #[tokio::test]
    async fn background_daemon_survives_a_successful_command() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let r = shell(&format!(
            "sleep 1000 >/dev/null 2>&1 & echo $! > {}",
            pids.display()
        ));
        let (ctx, _) = ctx();
        run(&r, &ctx).await.unwrap();
        let pid = read_pids(&pids, 1).await[0];
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(alive(pid), "a daemon started on purpose was killed");
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}
