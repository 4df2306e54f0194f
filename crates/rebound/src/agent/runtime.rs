//! Runtimes of the config as [`Ensure`] machines whose start and probe are
//! rebound-init steps.

use std::sync::Arc;
use std::time::Duration;

use rebound_ensure::{Ensure, EnsureMap, ProbeOutcome, ReadyInfo, StartError};
use rebound_init::events::Event;
use rebound_init::orchestrator::Runner;
use rebound_init::spec::Spec;

use super::config::{AgentConfig, RuntimeConfig};

/// Builds one machine per runtime of the config.
pub fn build(config: &AgentConfig) -> EnsureMap<String> {
    let mut map = EnsureMap::new();
    for runtime in &config.runtimes {
        map.insert(runtime.name.clone(), ensure_for(runtime));
    }
    map
}

/// The longest the adoption probe at the start of a start may take: a
/// runtime that is already up answers a local probe at once, and one that is
/// down should not delay its own start by a whole probe timeout.
const ADOPT_PROBE_LIMIT: Duration = Duration::from_millis(500);

/// The start probes once (a runtime that already answers is adopted as it
/// is), runs the `start` steps, then runs the probe until it passes (the
/// steps often only launch a daemon); the whole is bounded by
/// `start_timeout` in the state machine, which cancels it. The probe is the
/// one probe step; every run of it inside a start is bounded by the probe
/// timeout (the step's `timeout`, default 5 s), so a probe step without a
/// timeout of its own cannot hold the start until `start_timeout`.
fn ensure_for(runtime: &RuntimeConfig) -> Ensure {
    let probe_timeout = runtime.ensure.probe_timeout();
    let name: Arc<str> = Arc::from(runtime.name.as_str());
    let start = Arc::new(runtime.start.clone());
    let probe = Arc::new(runtime.probe.clone());
    let endpoint: Arc<str> = Arc::from(runtime.endpoint.as_str());
    let start_fn = {
        let (name, probe, endpoint) =
            (Arc::clone(&name), Arc::clone(&probe), Arc::clone(&endpoint));
        move || {
            let (name, start, probe, endpoint) = (
                Arc::clone(&name),
                Arc::clone(&start),
                Arc::clone(&probe),
                Arc::clone(&endpoint),
            );
            async move { start_runtime(&name, &start, &probe, probe_timeout, &endpoint).await }
        }
    };
    let probe_fn = move || {
        let (name, probe, endpoint) =
            (Arc::clone(&name), Arc::clone(&probe), Arc::clone(&endpoint));
        async move {
            match run_probe(&name, &probe, probe_timeout).await {
                Ok(()) => ProbeOutcome::Up(ReadyInfo::new(&*endpoint, "probe passed")),
                Err(why) => ProbeOutcome::Down(why),
            }
        }
    };
    Ensure::new(runtime.ensure.clone(), start_fn, probe_fn)
}

fn runner(name: &str, spec: &Spec) -> Runner {
    let name = name.to_owned();
    Runner::new(spec).on_event(move |event| log_event(&name, event))
}

fn log_event(runtime: &str, event: &Event) {
    match event {
        Event::Output { step, line, .. } => {
            tracing::debug!(runtime, step = step.as_str(), "{line}");
        }
        Event::AttemptFailed { step, error, .. } => {
            tracing::debug!(runtime, step = step.as_str(), %error, "attempt failed");
        }
        other => tracing::trace!(runtime, ?other, "init event"),
    }
}

/// Runs the probe step once, bounded by `limit` (dropping the runner
/// cancels the step and kills what it runs).
async fn run_probe(name: &str, probe: &Spec, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, runner(name, probe).run()).await {
        Ok(result) => result.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the probe did not pass within {}",
            humantime::format_duration(limit)
        )),
    }
}

async fn start_runtime(
    name: &str,
    start: &Spec,
    probe: &Spec,
    probe_timeout: Duration,
    endpoint: &str,
) -> Result<ReadyInfo, StartError> {
    // Already up (the agent restarted while the runtime kept running):
    // adopt it rather than run the start steps a second time.
    if run_probe(name, probe, probe_timeout.min(ADOPT_PROBE_LIMIT))
        .await
        .is_ok()
    {
        tracing::info!(runtime = name, "runtime already answers its probe; adopted");
        return Ok(ReadyInfo::new(
            endpoint,
            "already running: adopted without running the start steps",
        ));
    }
    tracing::info!(runtime = name, "starting runtime");
    let summary = runner(name, start)
        .run()
        .await
        .map_err(|e| StartError::new(format!("start step failed: {e}")))?;
    let steps = summary.steps.len();
    // Poll the probe until it passes: 100 ms doubling to 1 s between tries.
    let mut pause = Duration::from_millis(100);
    loop {
        match run_probe(name, probe, probe_timeout).await {
            Ok(()) => {
                // The moment readiness is known here (the push latency
                // benchmark measures from this line).
                tracing::info!(runtime = name, "probe passed");
                return Ok(ReadyInfo::new(
                    endpoint,
                    format!("started: {steps} step(s) ran, probe passed"),
                ));
            }
            Err(why) => tracing::debug!(runtime = name, %why, "not up yet"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
