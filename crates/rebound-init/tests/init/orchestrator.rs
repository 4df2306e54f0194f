//! The orchestrator with real actions: real commands, real files, real
//! sockets. Policies whose delays matter run in virtual time with actions
//! that only use tokio timers and the file system (`init.wait_file`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound_init::events::Event;
use rebound_init::orchestrator::{InitErrorKind, Outcome, Policies, Runner};
use rebound_init::spec::Spec;

fn spec(yaml: &str) -> Spec {
    Spec::from_yaml(yaml, "test.yaml", None).unwrap_or_else(|e| panic!("{e}"))
}

/// A runner that records every event.
fn recorded(spec: &Spec) -> (Runner, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let runner = Runner::new(spec).on_event(move |e: &Event| sink.lock().unwrap().push(e.clone()));
    (runner, events)
}

/// Short real delays between attempts, so real-process tests stay quick.
fn fast() -> Policies {
    let step = rebound_retry::ExponentialBuilder::new()
        .with_initial_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(20))
        .forever()
        .build()
        .unwrap();
    Policies::default()
        .with_step_backoff(step)
        .with_restart_pause(Duration::from_millis(5))
}

fn started(events: &[Event], id: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::StepStarted { step, .. } if step == id))
        .count()
}

/// A shell command that fails until it has run `n` times (counted in a
/// file in `dir`).
fn fails_until(dir: &Path, n: u32) -> String {
    format!(
        "c=$(cat '{0}/count' 2>/dev/null || echo 0); c=$((c+1)); echo $c > '{0}/count'; echo attempt $c; [ $c -ge {n} ]",
        dir.display()
    )
}

fn alive(pid: i32) -> bool {
    // A zombie has exited; only a running process counts.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (bounded, for the kill grace of the action plus slack) until none
/// of `pids` runs. Not a timing check: the bound only stops a hang.
async fn assert_all_die(pids: &[i32], what: &str) {
    for _ in 0..500 {
        if pids.iter().all(|&p| !alive(p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let survivors: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
    panic!("processes {survivors:?} survived {what}");
}

#[tokio::test]
async fn command_failing_twice_succeeds_under_retry_2() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "init:\n  steps:\n    - id: flaky\n      uses: init.run\n      with: {{ command: \"{}\" }}\n      retry: 2\n",
        fails_until(dir.path(), 3)
    );
    let spec = spec(&yaml);
    let (runner, events) = recorded(&spec);
    let summary = runner.with_policies(fast()).run().await.unwrap();
    assert_eq!(summary.steps[0].outcome, Outcome::Succeeded);
    assert_eq!(summary.steps[0].attempts, 3);
    let events = events.lock().unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::AttemptFailed {
                attempt,
                next_delay,
                ..
            } => Some((*attempt, next_delay.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [(1, true), (2, true)]);
    let lines: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Output { step, line, .. } if step == "flaky" => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, ["attempt 1", "attempt 2", "attempt 3"]);
}

#[tokio::test]
async fn command_failing_twice_fails_the_init_under_retry_1() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "init:\n  steps:\n    - id: flaky\n      uses: init.run\n      with: {{ command: \"{}\" }}\n      retry: 1\n    - id: after\n      uses: init.run\n      with: {{ command: 'true' }}\n",
        fails_until(dir.path(), 3)
    );
    let spec = spec(&yaml);
    let (runner, events) = recorded(&spec);
    let err = runner.with_policies(fast()).run().await.unwrap_err();
    assert_eq!(err.kind(), InitErrorKind::StepFailed);
    assert_eq!(err.step(), "flaky");
    assert_eq!(err.exit_code(), Some(1));
    assert!(
        err.to_string().starts_with("init failed at step `flaky`"),
        "{err}"
    );
    let summary = err.summary();
    assert_eq!(summary.steps[0].outcome, Outcome::Failed);
    assert_eq!(summary.steps[0].attempts, 2);
    assert_eq!(summary.steps[1].outcome, Outcome::NotRun);
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::AttemptFailed {
            attempt: 2,
            next_delay: None,
            ..
        }
    )));
    assert!(matches!(
        events.last(),
        Some(Event::InitFinished { ok: false, .. })
    ));
}

#[tokio::test]
async fn permanent_error_is_not_retried() {
    let spec = spec(
        "init:\n  steps:\n    - id: missing\n      uses: init.run\n      with: { command: ['/nonexistent/rebound-prog'] }\n      retry: 5\n",
    );
    let err = Runner::new(&spec)
        .with_policies(fast())
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.summary().steps[0].attempts, 1);
    assert!(
        err.to_string().contains("/nonexistent/rebound-prog"),
        "{err}"
    );
}

#[tokio::test]
async fn warn_and_continue_let_the_init_go_on() {
    let spec = spec(
        "init:\n  steps:\n    - id: loud\n      uses: init.run\n      with: { command: 'exit 4' }\n      on_failure: warn\n    - id: quiet\n      uses: init.run\n      with: { command: 'exit 5' }\n      on_failure: continue\n    - id: last\n      uses: init.run\n      with: { command: 'true' }\n",
    );
    let (runner, events) = recorded(&spec);
    let summary = runner.run().await.unwrap();
    let outcomes: Vec<_> = summary.steps.iter().map(|s| s.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Warned, Outcome::Continued, Outcome::Succeeded]
    );
    assert!(summary.is_success());
    assert!(summary.steps[0].error.as_deref().unwrap().contains('4'));
    let events = events.lock().unwrap();
    let skipped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepSkipped {
                step, on_failure, ..
            } => Some((step.as_str(), *on_failure)),
            _ => None,
        })
        .collect();
    use rebound_init::spec::OnFailure;
    assert_eq!(
        skipped,
        [("loud", OnFailure::Warn), ("quiet", OnFailure::Continue)]
    );
}

#[tokio::test]
async fn step_timeout_kills_a_child_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let yaml = format!(
        "init:\n  steps:\n    - id: stuck\n      uses: init.run\n      with: {{ command: \"trap '' TERM; sleep 1000 & echo $$ $! > '{}'; wait\" }}\n      timeout: 700ms\n      retry: 3\n",
        pids.display()
    );
    let spec = spec(&yaml);
    let err = Runner::new(&spec).run().await.unwrap_err();
    assert_eq!(err.kind(), InitErrorKind::StepTimedOut);
    assert_eq!(err.summary().steps[0].outcome, Outcome::TimedOut);
    let text = err.to_string();
    assert!(
        text.contains("step `stuck` timed out after 700ms waiting for command `trap"),
        "{text}"
    );
    let pids: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert_all_die(&pids, "the step timeout").await;
}

#[tokio::test]
async fn dropping_the_run_cancels_the_step_and_kills_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let yaml = format!(
        "init:\n  steps:\n    - id: long\n      uses: init.run\n      with: {{ command: \"sleep 1000 & echo $$ $! > '{}'; wait\" }}\n",
        pids.display()
    );
    let spec = spec(&yaml);
    let runner = Runner::new(&spec);
    let mut run = Box::pin(runner.run());
    // Let the command start and write its pids, then drop the run.
    let mut waited = 0;
    while !pids.exists() && waited < 500 {
        tokio::select! {
            _ = &mut run => panic!("the step ended on its own"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => waited += 1,
        }
    }
    let text = std::fs::read_to_string(&pids).unwrap();
    drop(run);
    let pids: Vec<i32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert_all_die(&pids, "cancellation").await;
}

#[tokio::test]
async fn wait_tcp_step_succeeds_when_a_real_port_opens_during_retries() {
    // Reserve a free port, close it, and open it again a little later.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = format!(
        "init:\n  steps:\n    - id: db\n      uses: init.wait_tcp\n      with: {{ host: 127.0.0.1, port: {port}, timeout: 100ms }}\n      retry: 50\n      timeout: 10s\n"
    );
    let spec = spec(&yaml);
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap()
    });
    let summary = Runner::new(&spec)
        .with_policies(fast())
        .run()
        .await
        .unwrap();
    let _listener = opener.await.unwrap();
    assert_eq!(summary.steps[0].outcome, Outcome::Succeeded);
    assert!(summary.steps[0].attempts >= 2, "{summary:?}");
}

#[tokio::test(start_paused = true)]
async fn step_timeout_bounds_the_retries_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "init:\n  steps:\n    - id: never\n      uses: init.wait_file\n      with: {{ path: '{}', timeout: 300ms }}\n      retry: 100\n      timeout: 2s\n",
        dir.path().join("absent").display()
    );
    let spec = spec(&yaml);
    let begun = tokio::time::Instant::now();
    let err = Runner::new(&spec).run().await.unwrap_err();
    assert_eq!(begun.elapsed(), Duration::from_secs(2));
    assert_eq!(err.kind(), InitErrorKind::StepTimedOut);
    let attempts = err.summary().steps[0].attempts;
    assert!((2..=7).contains(&attempts), "attempts {attempts}");
    let text = err.to_string();
    assert!(
        text.contains("step `never` timed out after 2.00s waiting for file"),
        "{text}"
    );
    assert!(text.contains("last error"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn retries_wait_the_default_step_backoff_in_virtual_time() {
    // Default step backoff: 100 ms, x2, equal jitter; `retry: 3` gives 4
    // attempts and 3 pauses, and no pause after the last attempt.
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "init:\n  steps:\n    - id: cfg\n      uses: init.wait_file\n      with: {{ path: '{}', timeout: 100ms }}\n      retry: 3\n",
        dir.path().join("absent").display()
    );
    let spec = spec(&yaml);
    let (runner, events) = recorded(&spec);
    let begun = tokio::time::Instant::now();
    let err = runner.run().await.unwrap_err();
    let elapsed = begun.elapsed();
    assert_eq!(err.summary().steps[0].attempts, 4);
    let delays: Vec<(u32, Option<Duration>)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::AttemptFailed {
                attempt,
                next_delay,
                ..
            } => Some((*attempt, *next_delay)),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(delays[3].1, None, "a pause after the last attempt");
    let mut paused = Duration::ZERO;
    for ((attempt, delay), nominal_ms) in delays[..3].iter().zip([100u64, 200, 400]) {
        let delay = delay.unwrap_or_else(|| panic!("attempt {attempt}: no next delay"));
        let nominal = Duration::from_millis(nominal_ms);
        assert!(
            delay >= nominal / 2 && delay <= nominal,
            "attempt {attempt}: {delay:?} not within equal jitter of {nominal:?}"
        );
        paused += delay;
    }
    // Four 100 ms attempts plus the pauses (timers have 1 ms ticks).
    let expected = Duration::from_millis(400) + paused;
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(8),
        "took {elapsed:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn action_timeout_under_fail_is_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "init:\n  steps:\n    - id: cfg\n      uses: init.wait_file\n      with: {{ path: '{}', timeout: 1s }}\n",
        dir.path().join("absent").display()
    );
    let err = Runner::new(&spec(&yaml)).run().await.unwrap_err();
    assert_eq!(err.kind(), InitErrorKind::StepTimedOut);
    let text = err.to_string();
    assert!(text.contains("step `cfg` timed out: "), "{text}");
    assert!(text.contains("absent"), "{text}");
}

/// Steps `ready` (a file that exists) and `late` (a file created by the
/// event sink when the init restarts for the `create_on`-th time).
fn restart_spec(dir: &Path, action: &str, max_retries: u32) -> Spec {
    std::fs::write(dir.join("ready"), "").unwrap();
    spec(&format!(
        "init:\n  steps:\n    - id: ready\n      uses: init.wait_file\n      with: {{ path: '{0}/ready' }}\n    - id: late\n      uses: init.wait_file\n      with: {{ path: '{0}/late', timeout: 1s }}\nerrors:\n  on_init_failure:\n    action: {action}\n    max_retries: {max_retries}\n",
        dir.display()
    ))
}

fn restarted_delays(events: &[Event]) -> Vec<(u32, Duration, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::InitRestarted {
                restart,
                delay,
                resume_at,
                ..
            } => Some((*restart, *delay, resume_at.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn restart_resumes_at_the_failed_step_after_a_fixed_pause() {
    let dir = tempfile::tempdir().unwrap();
    let spec = restart_spec(dir.path(), "restart", 3);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let late = dir.path().join("late");
    let runner = Runner::new(&spec).on_event(move |e: &Event| {
        if matches!(e, Event::InitRestarted { restart: 2, .. }) {
            std::fs::write(&late, "").unwrap();
        }
        sink.lock().unwrap().push(e.clone());
    });
    let begun = tokio::time::Instant::now();
    let summary = runner.run().await.unwrap();
    // Two failed runs of `late` (1 s each) and two 500 ms pauses.
    assert!(
        begun.elapsed() >= Duration::from_secs(3),
        "{:?}",
        begun.elapsed()
    );
    assert!(
        begun.elapsed() < Duration::from_millis(3100),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(summary.restarts, 2);
    assert_eq!(summary.steps[0].attempts, 1, "a succeeded step ran again");
    assert_eq!(summary.steps[1].attempts, 3);
    assert_eq!(summary.steps[1].outcome, Outcome::Succeeded);
    let events = events.lock().unwrap();
    assert_eq!(started(&events, "ready"), 1);
    assert_eq!(started(&events, "late"), 3);
    let ms500 = Duration::from_millis(500);
    assert_eq!(
        restarted_delays(&events),
        [(1, ms500, "late".to_owned()), (2, ms500, "late".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_with_jitter_and_gives_up_after_max_retries() {
    let dir = tempfile::tempdir().unwrap();
    let spec = restart_spec(dir.path(), "backoff", 3);
    let (runner, events) = recorded(&spec);
    let err = runner.run().await.unwrap_err();
    assert_eq!(err.kind(), InitErrorKind::StepTimedOut);
    assert_eq!(err.step(), "late");
    assert!(err.to_string().ends_with("(after 3 restarts)"), "{err}");
    let summary = err.summary();
    assert_eq!(summary.restarts, 3);
    assert_eq!(summary.steps[0].attempts, 1);
    assert_eq!(summary.steps[1].attempts, 4);
    let delays = restarted_delays(&events.lock().unwrap());
    assert_eq!(delays.len(), 3);
    for ((restart, delay, resume_at), nominal) in delays.iter().zip([1u64, 2, 4]) {
        let nominal = Duration::from_secs(nominal);
        assert!(
            *delay >= nominal / 2 && *delay <= nominal,
            "restart {restart}: {delay:?} not within equal jitter of {nominal:?}"
        );
        assert_eq!(resume_at, "late");
    }
}

#[tokio::test(start_paused = true)]
async fn fail_policy_does_not_restart() {
    let dir = tempfile::tempdir().unwrap();
    let spec = restart_spec(dir.path(), "fail", 3);
    let (runner, events) = recorded(&spec);
    let err = runner.run().await.unwrap_err();
    assert_eq!(err.summary().restarts, 0);
    assert!(restarted_delays(&events.lock().unwrap()).is_empty());
}

#[test]
fn events_serialize_to_one_json_object_each() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = spec(
        "init:\n  steps:\n    - id: hi\n      uses: init.run\n      with: { command: ['echo', 'hello'] }\n",
    );
    let (runner, events) = recorded(&spec);
    rt.block_on(runner.run()).unwrap();
    let lines: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["step_started", "output", "step_succeeded", "init_finished"]
    );
    assert!(lines[1].contains(r#""line":"hello""#), "{}", lines[1]);
}

/// The delays announced by `AttemptFailed`, in order.
fn next_delays(events: &[Event]) -> Vec<Option<Duration>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::AttemptFailed { next_delay, .. } => Some(*next_delay),
            _ => None,
        })
        .collect()
}

/// A step waiting for a file that never appears (each attempt gives up
/// after `with.timeout`), retried as `retry` says.
fn absent_file_spec(dir: &Path, with_timeout: &str, retry: &str) -> Spec {
    spec(&format!(
        "init:\n  steps:\n    - id: cfg\n      uses: init.wait_file\n      with: {{ path: '{}', timeout: {with_timeout} }}\n      retry: {retry}\n",
        dir.join("absent").display()
    ))
}

#[tokio::test(start_paused = true)]
async fn a_retry_mapping_drives_the_attempts_and_delays() {
    let dir = tempfile::tempdir().unwrap();
    let spec = absent_file_spec(
        dir.path(),
        "100ms",
        "{ attempts: 5, backoff: exponential, initial: 1s, multiplier: 3, max: 5s, jitter: none }",
    );
    let (runner, events) = recorded(&spec);
    let begun = tokio::time::Instant::now();
    let err = runner.run().await.unwrap_err();
    let elapsed = begun.elapsed();
    assert_eq!(err.summary().steps[0].attempts, 5);
    let events = events.lock().unwrap();
    let s = Duration::from_secs;
    assert_eq!(
        next_delays(&events),
        [Some(s(1)), Some(s(3)), Some(s(5)), Some(s(5)), None]
    );
    assert!(
        matches!(
            events[0],
            Event::StepStarted {
                max_attempts: 5,
                ..
            }
        ),
        "{:?}",
        events[0]
    );
    // Five 100 ms attempts and 14 s of pauses (timers have 1 ms ticks).
    let expected = Duration::from_millis(14_500);
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(10),
        "took {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_mapping_of_each_backoff_kind_makes_its_attempts() {
    for (kind, delays_ms) in [
        ("constant", vec![200u64, 200, 200]),
        ("fibonacci", vec![200, 200, 400]),
        ("exponential", vec![200, 400, 800]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let spec = absent_file_spec(
            dir.path(),
            "10ms",
            &format!("{{ attempts: 4, backoff: {kind}, initial: 200ms, jitter: none }}"),
        );
        let (runner, events) = recorded(&spec);
        let err = runner.run().await.unwrap_err();
        assert_eq!(err.summary().steps[0].attempts, 4, "{kind}");
        let mut want: Vec<_> = delays_ms
            .into_iter()
            .map(|ms| Some(Duration::from_millis(ms)))
            .collect();
        want.push(None);
        assert_eq!(next_delays(&events.lock().unwrap()), want, "{kind}");
    }
    // Decorrelated jitter: random delays, from the base up to the cap.
    let dir = tempfile::tempdir().unwrap();
    let spec = absent_file_spec(
        dir.path(),
        "10ms",
        "{ attempts: 6, backoff: decorrelated, initial: 100ms, max: 2s }",
    );
    let (runner, events) = recorded(&spec);
    let err = runner.run().await.unwrap_err();
    assert_eq!(err.summary().steps[0].attempts, 6);
    let delays = next_delays(&events.lock().unwrap());
    assert_eq!(delays.len(), 6);
    for d in &delays[..5] {
        let d = d.unwrap();
        assert!(
            d >= Duration::from_millis(100) && d <= Duration::from_secs(2),
            "{d:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_deadline_stops_before_a_pause_that_would_pass_it() {
    // Attempts at 0, 1.1 s, 2.2 s and 3.3 s (100 ms each, 1 s apart); the
    // pause after the fourth would end past the 3.5 s deadline.
    let dir = tempfile::tempdir().unwrap();
    let spec = absent_file_spec(
        dir.path(),
        "100ms",
        "{ attempts: forever, backoff: constant, initial: 1s, jitter: none, deadline: 3500ms }",
    );
    let (runner, events) = recorded(&spec);
    let begun = tokio::time::Instant::now();
    let err = runner.run().await.unwrap_err();
    let elapsed = begun.elapsed();
    assert_eq!(err.kind(), InitErrorKind::StepTimedOut);
    assert_eq!(err.summary().steps[0].attempts, 4);
    assert!(
        elapsed >= Duration::from_millis(3400) && elapsed < Duration::from_millis(3500),
        "took {elapsed:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("step `cfg` ran out of its retry deadline (3.50s) waiting for file"),
        "{text}"
    );
    assert!(text.contains("(4 attempts; last error: "), "{text}");
    let events = events.lock().unwrap();
    assert_eq!(next_delays(&events).last(), Some(&None));
    assert!(
        matches!(
            events[0],
            Event::StepStarted {
                max_attempts: u64::MAX,
                ..
            }
        ),
        "{:?}",
        events[0]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_attempt_timeout_cuts_each_attempt_and_retries() {
    // The action would wait 10 s; each attempt is cut after 200 ms.
    let dir = tempfile::tempdir().unwrap();
    let spec = absent_file_spec(
        dir.path(),
        "10s",
        "{ attempts: 3, backoff: constant, initial: 1s, jitter: none, attempt_timeout: 200ms }",
    );
    let (runner, events) = recorded(&spec);
    let begun = tokio::time::Instant::now();
    let err = runner.run().await.unwrap_err();
    let elapsed = begun.elapsed();
    assert_eq!(err.kind(), InitErrorKind::StepTimedOut);
    assert_eq!(err.summary().steps[0].attempts, 3);
    let expected = Duration::from_millis(2600);
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(10),
        "took {elapsed:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("attempt timed out after 200ms (retry.attempt_timeout) waiting for file"),
        "{text}"
    );
    let s = Duration::from_secs;
    assert_eq!(
        next_delays(&events.lock().unwrap()),
        [Some(s(1)), Some(s(1)), None]
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_mapping_does_not_retry_a_permanent_error() {
    let spec = spec(
        "init:\n  steps:\n    - id: missing\n      uses: init.run\n      with: { command: ['/nonexistent/rebound-prog'] }\n      retry: { attempts: 5, initial: 1s }\n",
    );
    let err = Runner::new(&spec).run().await.unwrap_err();
    assert_eq!(err.summary().steps[0].attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn zlayer_retry_count_reads_and_runs_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let spec = absent_file_spec(dir.path(), "10ms", "3");
    let step = &spec.init.steps[0];
    assert_eq!((step.retry, step.retry_policy.as_ref()), (3, None));
    let (runner, events) = recorded(&spec);
    let err = runner.run().await.unwrap_err();
    assert_eq!(err.summary().steps[0].attempts, 4);
    let events = events.lock().unwrap();
    assert!(
        matches!(
            events[0],
            Event::StepStarted {
                max_attempts: 4,
                ..
            }
        ),
        "{:?}",
        events[0]
    );
    assert_eq!(next_delays(&events).len(), 4);
}
