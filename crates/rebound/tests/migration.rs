//! The whole loop, end to end, with the files of `examples/migration`:
//! three `rebound agent` processes on Unix sockets stand for nodes n1, n2
//! and n3; a real S3 server (`s3s-fs`) holds the workload's checkpoint,
//! pushed from n1 with `init.s3_push`; n2 has crashed; `rebound recovery
//! run` runs the example's migrate command (`rebound ensure` on the target,
//! then `rebound init` pulling the checkpoint with `init.s3_pull`), which
//! exits 69 for n2: the journal records `target_unreachable`, and the
//! worker moves the migration to n3, where it succeeds.

mod support;

#[allow(dead_code)]
#[path = "../../rebound-init/tests/common/s3.rs"]
mod s3;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Cli, Outcome, poll_until};

/// What n1's workload checkpoints, and every node must end up with.
const CHECKPOINT: &str = "orders=42 written-on=n1\n";

/// `examples/migration`, in the repository.
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/migration")
}

/// Copies `from` into `to`, recursively (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the example in a temporary directory, with `rebound` on its
/// PATH, as `run.sh` sets it up; the agents and workloads it started are
/// stopped when it is dropped.
struct Site {
    dir: tempfile::TempDir,
    path_var: OsString,
    /// The S3 server's endpoint and keys, for `init.s3_push` / `s3_pull`.
    aws: Vec<(&'static str, String)>,
    agents: Vec<(String, Child)>,
}

impl Site {
    fn new(s3: Option<&s3::S3Server>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&example_dir(), dir.path());
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rebound"), bin.join("rebound")).unwrap();
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path_var = std::env::join_paths(paths).unwrap();
        let aws = s3.map_or_else(Vec::new, |s3| {
            vec![
                ("AWS_ENDPOINT_URL", s3.endpoint()),
                ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY.to_owned()),
                ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY.to_owned()),
                ("AWS_REGION", "us-east-1".to_owned()),
            ]
        });
        Self {
            dir,
            path_var,
            aws,
            agents: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `rebound ARGS` run in the site (or `cwd` under it), with the example's
    /// environment: rebound on PATH, the S3 server's endpoint and keys, the
    /// site's journal.
    fn cli_in(&self, cwd: &str) -> Cli {
        let mut cli = Cli::new()
            .current_dir(self.path(cwd))
            .env("PATH", &self.path_var);
        for (key, value) in &self.aws {
            cli = cli.env(key, value);
        }
        cli.env(
            "REBOUND_JOURNAL",
            format!("sqlite:{}", self.path("journal.db").display()),
        )
        .env("MIGRATE_WAIT", "2s")
    }

    /// Starts `node`'s agent in its directory, with the example's config,
    /// and waits until it answers on its socket.
    fn start_agent(&mut self, node: &str) {
        let dir = self.path(&format!("nodes/{node}"));
        let log = std::fs::File::create(dir.join("agent.log")).unwrap();
        let child = Cli::new()
            .args(["agent", "--config", "agent.yaml"])
            .current_dir(&dir)
            .command()
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agents.push((node.to_owned(), child));
        let socket = dir.join("agent.sock");
        let listening = poll_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        assert!(
            listening,
            "{node}'s agent did not listen: {}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        );
    }

    /// Kills `node`'s agent with SIGKILL, as a crashing node would: its
    /// socket file stays behind, with nobody listening.
    fn crash(&mut self, node: &str) {
        let at = self.agents.iter().position(|(n, _)| n == node).unwrap();
        let (_, mut child) = self.agents.remove(at);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(self.path(&format!("nodes/{node}/agent.sock")).exists());
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        for (_, child) in &mut self.agents {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The workload runtimes the agents started (they outlive an agent,
        // as a runtime does).
        for node in ["n1", "n2", "n3"] {
            let pid_file = self.path(&format!("nodes/{node}/data/workload.pid"));
            if let Ok(pid) = std::fs::read_to_string(pid_file) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

impl Site {
    /// The recovery worker, as run.sh runs it: `run --once` until nothing
    /// is pending or running (a retry may fall due just after a run has
    /// ended). The attempts it reported, in order.
    fn recover(&self) -> Vec<Value> {
        let mut attempts = Vec::new();
        for _ in 0..20 {
            let out = self
                .cli_in(".")
                .args([
                    "recovery",
                    "--initial-delay",
                    "1ms",
                    "run",
                    "--once",
                    "--json",
                ])
                .args(["--migrate-cmd", "./migrate.sh"])
                .args(["--rollback-cmd", "./rollback.sh"])
                .run()
                .code(0)
                .stderr_lacks(s3::SECRET_KEY);
            attempts.extend(
                json_lines(&out)
                    .into_iter()
                    .filter(|e| e["event"] == "attempt"),
            );
            let open = ["pending", "running"].iter().any(|state| {
                !self
                    .cli_in(".")
                    .args(["recovery", "list", "--json", "--state", state])
                    .run()
                    .code(0)
                    .stdout()
                    .trim()
                    .is_empty()
            });
            if !open {
                return attempts;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the recovery did not end: {attempts:#?}");
    }

    /// The workload runs on n1, checkpoints, and the checkpoint goes to S3
    /// with `init.s3_push`.
    fn checkpoint_on_n1(&self, s3: &s3::S3Server) {
        self.cli_in(".")
            .args(["ensure", "--agent", "unix:nodes/n1/agent.sock"])
            .args(["--wait", "30s", "workload"])
            .run()
            .code(0)
            .stdout_has("file:nodes/n1/data/ready");
        std::fs::write(self.path("nodes/n1/data/checkpoint.snap"), CHECKPOINT).unwrap();
        self.cli_in("nodes/n1")
            .args(["init", "../../push.yaml"])
            .run()
            .code(0)
            .stderr_lacks(s3::SECRET_KEY);
        assert_eq!(
            std::fs::read_to_string(s3.root().join("snapshots/web/checkpoint.snap")).unwrap(),
            CHECKPOINT
        );
    }

    /// The scheduler's own migration of web from n1 to n2 timed out (what
    /// `rebound ensure` used to exit with for a dead agent): recorded, a
    /// retry on the same target.
    fn record_timeout_to_n2(&self) {
        let out = self
            .cli_in(".")
            .args(["recovery", "--initial-delay", "1ms", "record"])
            .args(["--migration", "m-1", "--workload", "web"])
            .args(["--source", "n1", "--target", "n2", "--kind", "timeout"])
            .args(["--message", "the scheduler's migrate call ran out of time"])
            .args(["--candidates", "n3", "--json"])
            .args(["--snapshot", "nodes/n1/data/checkpoint.snap"])
            .run()
            .code(0);
        let rec: Value = serde_json::from_str(out.stdout().trim()).unwrap();
        assert_eq!(rec["strategy"], "retry_on_same_target", "{rec}");
        assert_eq!(rec["target"], "n2", "{rec}");
    }

    /// `recovery show m-1 --json`.
    fn show(&self) -> Value {
        let out = self
            .cli_in(".")
            .args(["recovery", "show", "m-1", "--json"])
            .run()
            .code(0);
        serde_json::from_str(out.stdout().trim()).unwrap()
    }
}

/// (strategy, target, result, kind) of each history entry.
fn history(shown: &Value) -> Vec<(Value, Value, Value, Value)> {
    shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["strategy"].clone(),
                a["target"].clone(),
                a["result"].clone(),
                a["kind"].clone(),
            )
        })
        .collect()
}

fn json_lines(out: &Outcome) -> Vec<Value> {
    out.stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_migration_to_a_dead_node_is_recovered_on_the_next_candidate() {
    let s3 = s3::S3Server::start(&["snapshots"]);
    let mut site = Site::new(Some(&s3));
    for node in ["n1", "n2", "n3"] {
        site.start_agent(node);
    }
    site.crash("n2");

    site.checkpoint_on_n1(&s3);
    site.record_timeout_to_n2();
    let attempts = site.recover();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    // n2: `rebound ensure` found its agent unreachable for the whole
    // --wait and exited 69, which the default table reads as
    // target_unreachable: the next strategy is another target.
    assert_eq!(attempts[0]["target"], "n2", "{attempts:#?}");
    assert_eq!(attempts[0]["state"], "pending");
    assert_eq!(attempts[0]["kind"], "target_unreachable");
    assert_eq!(attempts[0]["next_strategy"], "retry_on_different_target");
    assert_eq!(attempts[0]["message"], "migrate command exited with 69");
    // n3: the runtime started, the checkpoint pulled.
    assert_eq!(attempts[1]["strategy"], "retry_on_different_target");
    assert_eq!(attempts[1]["target"], "n3", "{attempts:#?}");
    assert_eq!(attempts[1]["state"], "succeeded");

    // The journal's history.
    let shown = site.show();
    let rec = &shown["recovery"];
    assert_eq!(rec["state"], "succeeded", "{shown:#}");
    assert_eq!(rec["target"], "n3", "{shown:#}");
    assert_eq!(
        rec["failed_targets"],
        serde_json::json!(["n2"]),
        "{shown:#}"
    );
    assert_eq!(
        history(&shown),
        [
            (Value::Null, "n2".into(), "failed".into(), "timeout".into()),
            (
                "retry_on_same_target".into(),
                "n2".into(),
                "failed".into(),
                "target_unreachable".into()
            ),
            (
                "retry_on_different_target".into(),
                "n3".into(),
                "succeeded".into(),
                Value::Null
            ),
        ],
        "{shown:#}"
    );

    // The checkpoint is in n3's data directory, and n3's runtime is up;
    // n2 never got anything.
    assert_eq!(
        std::fs::read_to_string(site.path("nodes/n3/data/workload.snap")).unwrap(),
        CHECKPOINT
    );
    assert!(site.path("nodes/n3/data/ready").is_file());
    assert!(!site.path("nodes/n2/data").exists());
    site.cli_in(".")
        .args(["ensure", "--agent", "unix:nodes/n3/agent.sock", "--probe"])
        .args(["--wait", "5s", "workload"])
        .run()
        .code(0)
        .stdout_has("file:nodes/n3/data/ready");
}

#[test]
fn with_every_candidate_down_the_workload_is_rolled_back_to_its_source() {
    let s3 = s3::S3Server::start(&["snapshots"]);
    let mut site = Site::new(Some(&s3));
    for node in ["n1", "n2", "n3"] {
        site.start_agent(node);
    }
    site.crash("n2");
    site.crash("n3");
    site.checkpoint_on_n1(&s3);
    site.record_timeout_to_n2();

    let attempts = site.recover();
    let summary: Vec<(&Value, &Value, &Value)> = attempts
        .iter()
        .map(|a| (&a["target"], &a["state"], &a["kind"]))
        .collect();
    // n2, then n3 unreachable; no candidate left: the rollback command
    // puts the verified checkpoint back on n1.
    assert_eq!(
        summary,
        [
            (
                &"n2".into(),
                &"pending".into(),
                &"target_unreachable".into()
            ),
            (
                &"n3".into(),
                &"pending".into(),
                &"target_unreachable".into()
            ),
            (&"n1".into(), &"rolled_back".into(), &Value::Null),
        ],
        "{attempts:#?}"
    );
    let shown = site.show();
    assert_eq!(shown["recovery"]["state"], "rolled_back", "{shown:#}");
    assert_eq!(
        shown["recovery"]["failed_targets"],
        serde_json::json!(["n2", "n3"]),
        "{shown:#}"
    );
    assert_eq!(
        history(&shown).last().unwrap(),
        &(
            "rollback".into(),
            "n1".into(),
            "rolled_back".into(),
            Value::Null
        ),
        "{shown:#}"
    );
    assert_eq!(
        std::fs::read_to_string(site.path("nodes/n1/data/workload.snap")).unwrap(),
        CHECKPOINT
    );
}

#[test]
fn ensure_exits_69_when_no_call_reaches_the_agent() {
    // Before, this was 124 (a timeout): `rebound recovery run` then retried
    // the migration on the same dead node.
    let mut site = Site::new(None);
    let ensure = |site: &Site, node: &str| {
        site.cli_in(".")
            .args(["ensure", "--json", "--wait", "1s", "--agent"])
            .args([format!("unix:nodes/{node}/agent.sock")])
            .args(["workload"])
            .run()
    };
    // No socket at all: the node's agent never came up.
    let out = ensure(&site, "n2")
        .code(69)
        .stderr_has("the agent could not be reached for 1s");
    let last = json_lines(&out).pop().unwrap();
    assert_eq!(last["event"], "result");
    assert_eq!(last["outcome"], "unreachable", "{last}");
    // A socket nobody listens on: the agent crashed.
    site.start_agent("n2");
    site.crash("n2");
    ensure(&site, "n2").code(69).stderr_has("agent unreachable");
    // A node that answers is never 69: a runtime still starting when the
    // wait runs out is a timeout (124), kind `timeout`.
    std::fs::write(
        site.path("nodes/n3/agent.yaml"),
        "listen: unix:agent.sock\nruntimes:\n  workload:\n    start: { steps: [ { id: noop, uses: init.run, with: { command: \"true\" } } ] }\n    probe: { uses: init.wait_file, with: { path: never }, timeout: 100ms }\n    endpoint: none\n",
    )
    .unwrap();
    site.start_agent("n3");
    let out = ensure(&site, "n3").code(124);
    assert_eq!(json_lines(&out).pop().unwrap()["outcome"], "timeout");
}

#[test]
fn the_example_runs() {
    let example = example_dir().join("run.sh");
    let out = Command::new("bash")
        .arg(&example)
        .env("REBOUND_BIN", env!("CARGO_BIN_EXE_rebound"))
        .env("MIGRATE_WAIT", "1s")
        .env_remove("REBOUND_JOURNAL")
        .env_remove("REBOUND_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("state:") && l.trim_end().ends_with("succeeded")),
        "{stdout}"
    );
    assert!(
        stdout.contains("migrate command exited with 69"),
        "{stdout}"
    );
    assert!(
        stdout.contains("nodes/n3/data/workload.snap: orders=42"),
        "{stdout}"
    );
}
