//! Readiness pushed vs polled: the time from the probe passing in the agent
//! to `rebound ensure` exiting 0.
//!
//! One real `rebound agent` on a Unix socket serves 2 x RUNS runtimes whose
//! start takes 1 s (`sleep 1; touch NAME.up`, then the file probe passes at
//! once). Each round starts two `rebound ensure` processes at the same
//! moment: one for `pN` waiting on the watch stream (the default), one for
//! `qN` polling (`--no-watch`, the behaviour of agents without `GET /v1`),
//! so both modes see the same machine load. The agent logs "probe passed"
//! (with a microsecond timestamp) the moment its start's probe passes; the
//! bench notes the time each `rebound ensure` exits 0. The figure is the
//! difference, p50/p99 over RUNS rounds.
//!
//! Run: `cargo bench -p rebound --bench push_latency` (about a minute);
//! `REBOUND_BENCH_RUNS=N` changes the number of rounds (default 50).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_rebound");

fn config(dir: &str, runs: usize) -> String {
    let mut text = String::from("runtimes:\n");
    for i in 0..runs {
        for mode in ["p", "q"] {
            text.push_str(&format!(
                r#"  {mode}{i}:
    start:
      steps:
        - {{ id: boot, uses: init.run, with: {{ command: "sleep 1; touch {dir}/{mode}{i}.up" }} }}
    probe: {{ uses: init.wait_file, with: {{ path: "{dir}/{mode}{i}.up" }}, timeout: 1s }}
    endpoint: "file://{dir}/{mode}{i}.up"
    ready_ttl: 1h
"#
            ));
        }
    }
    text
}

/// Spawns `rebound ensure` for `name`; a thread reports the wall-clock
/// time it exited (and whether it exited 0) on `done`.
fn ensure(socket: &str, name: String, poll: bool, done: mpsc::Sender<(String, SystemTime, bool)>) {
    let mut cmd = Command::new(BIN);
    cmd.args(["ensure", "--agent", socket, &name, "--wait", "2m"])
        .env_remove("REBOUND_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if poll {
        cmd.arg("--no-watch");
    }
    let mut child = cmd.spawn().expect("spawn rebound ensure");
    std::thread::spawn(move || {
        let ok = child.wait().map(|s| s.success()).unwrap_or(false);
        let _ = done.send((name, SystemTime::now(), ok));
    });
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let runs: usize = std::env::var("REBOUND_BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_text = dir.path().display().to_string();
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, self::config(&dir_text, runs)).expect("write config");
    let socket = dir.path().join("agent.sock");
    let addr = format!("unix:{}", socket.display());
    let mut agent: Child = Command::new(BIN)
        .args(["agent", "--config"])
        .arg(&config)
        .args(["--listen", &addr])
        .env("REBOUND_LOG", "warn,rebound::agent::runtime=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rebound agent");
    // "probe passed" lines: `TIMESTAMP  INFO ... probe passed runtime="p3"`.
    let stderr = agent.stderr.take().expect("agent stderr");
    let (passed_tx, passed_rx) = mpsc::channel::<(String, SystemTime)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !line.contains("probe passed") {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(Ok(at)) = words.next().map(humantime::parse_rfc3339_weak) else {
                continue;
            };
            let runtime = words
                .find_map(|w| w.strip_prefix("runtime="))
                .map(|w| w.trim_matches('"').to_owned());
            if let Some(runtime) = runtime {
                let _ = passed_tx.send((runtime, at));
            }
        }
    });
    while UnixStream::connect(&socket).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (done_tx, done_rx) = mpsc::channel();
    let mut exits = HashMap::new();
    for i in 0..runs {
        ensure(&addr, format!("p{i}"), false, done_tx.clone());
        ensure(&addr, format!("q{i}"), true, done_tx.clone());
        for _ in 0..2 {
            let (name, at, ok) = done_rx.recv().expect("an ensure result");
            assert!(ok, "rebound ensure {name} failed");
            exits.insert(name, at);
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status();
    let _ = agent.wait();
    let passed: HashMap<String, SystemTime> = passed_rx.try_iter().collect();
    let mut pushed = Vec::new();
    let mut polled = Vec::new();
    for (name, exit) in &exits {
        let probe = passed
            .get(name)
            .unwrap_or_else(|| panic!("no `probe passed` line for {name}"));
        let ms = exit
            .duration_since(*probe)
            .expect("exit after the probe")
            .as_secs_f64()
            * 1000.0;
        if name.starts_with('p') {
            pushed.push(ms);
        } else {
            polled.push(ms);
        }
    }
    for v in [&mut pushed, &mut polled] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "probe passed -> rebound ensure exit 0, {runs} runs each, 1 s starts, run side by side"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10}",
        "mode", "min ms", "p50 ms", "p99 ms", "max ms"
    );
    for (mode, v) in [
        ("pushed (watch stream)", &pushed),
        ("polled (--no-watch)", &polled),
    ] {
        println!(
            "{mode:<22} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            v[0],
            percentile(v, 50.0),
            percentile(v, 99.0),
            v[v.len() - 1]
        );
    }
    println!(
        "p50 polled / pushed: {:.0}x",
        percentile(&polled, 50.0) / percentile(&pushed, 50.0)
    );
}
