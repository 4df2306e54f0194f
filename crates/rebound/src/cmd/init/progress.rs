//! Shows init events: a live line per step on a terminal (indicatif),
//! plain lines otherwise, or one JSON object per line with `--json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rebound_init::actions::Stream;
use rebound_init::events::Event;
use rebound_init::orchestrator::Summary;
use rebound_init::spec::OnFailure;

/// Where and how events are shown.
pub enum Progress {
    /// One JSON object per event on stdout.
    Json,
    /// Plain lines on stderr (not a terminal, e.g. a container log).
    Plain(Plain),
    /// Live spinners on the terminal (stderr).
    Live(Live),
    /// `--quiet`: nothing on success; a failed step and the summary of a
    /// failed init only (on stderr).
    Quiet,
}

/// The plain display's state: the step running now, for the "still
/// waiting" lines of a long step (steps run one at a time).
#[derive(Default)]
pub struct Plain {
    running: Mutex<Option<(String, String, Instant)>>,
}

/// The live display's state.
pub struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// JSON when asked, else quiet when asked, live when stderr is a
    /// terminal, plain otherwise.
    pub fn choose(json: bool, quiet: bool) -> Self {
        if json {
            Progress::Json
        } else if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Live(Live {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            })
        } else {
            Progress::Plain(Plain::default())
        }
    }

    /// Shows one event.
    pub fn event(&self, event: &Event) {
        match self {
            Progress::Json => json_line(event),
            Progress::Plain(plain) => {
                plain.track(event);
                if let Some((to_stdout, line)) = plain_line(event) {
                    if to_stdout {
                        out_line(&line);
                    } else {
                        err_line(&line);
                    }
                }
            }
            Progress::Live(live) => live.event(event),
            Progress::Quiet => {
                if let Event::StepFailed { .. } = event
                    && let Some((_, line)) = plain_line(event)
                {
                    err_line(&line);
                }
            }
        }
    }

    /// Shows the summary at the end of the init.
    pub fn summary(&self, summary: &Summary, ok: bool) {
        match self {
            Progress::Json => {
                let mut value = serde_json::to_value(summary).unwrap_or_default();
                if let Some(map) = value.as_object_mut() {
                    map.insert("event".into(), "summary".into());
                    map.insert("ok".into(), ok.into());
                }
                out_line(&value.to_string());
            }
            Progress::Quiet if ok => {}
            Progress::Plain(_) | Progress::Live(_) | Progress::Quiet => {
                if let Progress::Live(live) = self {
                    let _ = live.multi.clear();
                }
                let head = if ok { "init done" } else { "init failed" };
                err_line(&format!("rebound: {head}:\n{summary}"));
            }
        }
    }
}

impl Progress {
    /// A signal cancelled the init: with `--json` a last `interrupted`
    /// event (so that a reader of the stream knows it ended), on a terminal
    /// the running step's line says so.
    pub fn interrupted(&self, signal: &str, exit_code: i32) {
        match self {
            Progress::Json => out_line(&interrupted_json(signal, exit_code)),
            Progress::Live(live) => {
                if let Ok(bars) = live.bars.lock() {
                    for bar in bars.values().filter(|b| !b.is_finished()) {
                        bar.abandon_with_message(format!("interrupted ({signal})"));
                    }
                }
            }
            Progress::Plain(_) | Progress::Quiet => {}
        }
    }

    /// For plain output, a "still waiting" line about the running step;
    /// call every [`crate::output::STILL_WAITING_EVERY`] (the other displays show progress
    /// on their own).
    pub fn still_waiting(&self) {
        if let Progress::Plain(plain) = self
            && let Some(line) = plain.still_waiting_line(Instant::now())
        {
            err_line(&line);
        }
    }
}

impl Plain {
    fn track(&self, event: &Event) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        match event {
            Event::StepStarted { step, target, .. } => {
                *running = Some((step.clone(), target.clone(), Instant::now()));
            }
            Event::StepSucceeded { .. }
            | Event::StepFailed { .. }
            | Event::StepSkipped { .. }
            | Event::InitFinished { .. } => *running = None,
            _ => {}
        }
    }

    /// `rebound: [db] still waiting for tcp db:5432 (45s)`, when a step runs.
    fn still_waiting_line(&self, now: Instant) -> Option<String> {
        let running = self.running.lock().ok()?;
        let (step, target, started) = running.as_ref()?;
        let secs = now.saturating_duration_since(*started).as_secs();
        Some(format!(
            "rebound: [{step}] still waiting for {target} ({})",
            humantime::format_duration(Duration::from_secs(secs))
        ))
    }
}

/// `{"event":"interrupted","signal":"SIGTERM","exit_code":143}`
fn interrupted_json(signal: &str, exit_code: i32) -> String {
    serde_json::json!({"event": "interrupted", "signal": signal, "exit_code": exit_code})
        .to_string()
}

fn json_line(event: &Event) {
    if let Ok(text) = serde_json::to_string(event) {
        out_line(&text);
    }
}

/// Writes a line to stdout, best effort: progress is a log, and a reader
/// that went away (`| head`) or a full disk must not stop the init or keep
/// the workload from starting, so a write error is dropped here rather than
/// ending the command (as `--check`'s output does).
fn out_line(text: &str) {
    let _ = crate::output::out!("{text}");
}

/// Writes a line to stderr, ignoring errors as [`out_line`] does.
fn err_line(text: &str) {
    crate::output::err!("{text}");
}

/// A duration to the millisecond; below one, `0ms` (humantime says `0s`,
/// which read oddly beside the summary's `0ms` for the same step).
fn ms(d: Duration) -> String {
    let millis = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return "0ms".to_owned();
    }
    humantime::format_duration(Duration::from_millis(millis)).to_string()
}

fn attempts(n: u32) -> String {
    match n {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    }
}

/// The plain text of an event: `(to stdout, line)`; `None` for events
/// that plain output leaves out.
pub fn plain_line(event: &Event) -> Option<(bool, String)> {
    let line = match event {
        Event::StepStarted {
            step,
            target,
            max_attempts,
            timeout,
            ..
        } => {
            let mut bounds = Vec::new();
            if *max_attempts == u64::MAX {
                // A `retry:` policy with `attempts: forever`.
                bounds.push("no attempt limit".to_owned());
            } else if *max_attempts > 1 {
                bounds.push(format!("up to {max_attempts} attempts"));
            }
            if let Some(t) = timeout {
                bounds.push(format!("timeout {}", ms(*t)));
            }
            let bounds = if bounds.is_empty() {
                String::new()
            } else {
                format!(" ({})", bounds.join(", "))
            };
            format!("rebound: [{step}] {target}{bounds}")
        }
        Event::Output { step, stream, line } => {
            return Some((*stream == Stream::Stdout, format!("[{step}] {line}")));
        }
        Event::AttemptFailed {
            step,
            attempt,
            error,
            next_delay,
        } => match next_delay {
            Some(d) => format!(
                "rebound: [{step}] attempt {attempt} failed: {error}; retrying in {}",
                ms(*d)
            ),
            None => format!("rebound: [{step}] attempt {attempt} failed: {error}"),
        },
        Event::StepSucceeded {
            step,
            attempts: n,
            elapsed,
        } => format!("rebound: [{step}] ok ({}, {})", attempts(*n), ms(*elapsed)),
        Event::StepFailed { step, error, .. } => format!("rebound: [{step}] FAILED: {error}"),
        Event::StepSkipped {
            step,
            on_failure,
            error,
            ..
        } => match on_failure {
            OnFailure::Warn => {
                format!("rebound: [{step}] warning: {error} (on_failure: warn, going on)")
            }
            _ => format!("rebound: [{step}] failed, going on (on_failure: continue)"),
        },
        Event::InitRestarted {
            restart,
            max_retries,
            delay,
            resume_at,
        } => format!(
            "rebound: init failed; restart {restart}/{max_retries} in {}, resuming at [{resume_at}]",
            ms(*delay)
        ),
        _ => return None,
    };
    Some((false, line))
}

impl Live {
    fn bar(&self, step: &str) -> Option<ProgressBar> {
        self.bars.lock().ok()?.get(step).cloned()
    }

    fn event(&self, event: &Event) {
        match event {
            Event::StepStarted { step, target, .. } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {prefix:.bold} {elapsed:.dim} {wide_msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(format!("[{step}]"));
                bar.set_message(target.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                if let Ok(mut bars) = self.bars.lock() {
                    bars.insert(step.clone(), bar);
                }
            }
            Event::Output { step, line, .. } => {
                let _ = self.multi.println(format!("[{step}] {line}"));
            }
            Event::AttemptFailed {
                step,
                attempt,
                error,
                next_delay,
            } => {
                if let Some(bar) = self.bar(step) {
                    let retry = next_delay
                        .map(|d| format!("; retrying in {}", ms(d)))
                        .unwrap_or_default();
                    bar.set_message(format!("attempt {attempt} failed: {error}{retry}"));
                }
            }
            Event::StepSucceeded {
                step,
                attempts: n,
                elapsed,
            } => self.finish(step, format!("ok ({}, {})", attempts(*n), ms(*elapsed))),
            Event::StepFailed { step, error, .. } => self.finish(step, format!("FAILED: {error}")),
            Event::StepSkipped {
                step,
                on_failure,
                error,
                ..
            } => {
                let text = if *on_failure == OnFailure::Warn {
                    format!("warning: {error}")
                } else {
                    "failed, going on".to_owned()
                };
                self.finish(step, text);
            }
            other => {
                if let Some((_, line)) = plain_line(other) {
                    let _ = self.multi.println(line);
                }
            }
        }
    }

    fn finish(&self, step: &str, message: String) {
        if let Some(bar) = self.bar(step) {
            bar.set_style(
                ProgressStyle::with_template("  {prefix:.bold} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.finish_with_message(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn still_waiting_names_the_running_step_and_its_time() {
        let plain = Plain::default();
        let now = Instant::now();
        assert_eq!(plain.still_waiting_line(now), None, "no step runs yet");
        plain.track(&Event::StepStarted {
            step: "db".into(),
            action: "init.wait_tcp",
            target: "tcp 127.0.0.1:5432".into(),
            max_attempts: 1,
            timeout: None,
        });
        let later = Instant::now() + Duration::from_secs(45);
        assert_eq!(
            plain.still_waiting_line(later).as_deref(),
            Some("rebound: [db] still waiting for tcp 127.0.0.1:5432 (45s)")
        );
        plain.track(&Event::StepSucceeded {
            step: "db".into(),
            attempts: 1,
            elapsed: Duration::from_secs(45),
        });
        assert_eq!(plain.still_waiting_line(later), None, "the step ended");
    }

    #[test]
    fn interrupted_json_names_the_signal_and_code() {
        let v: serde_json::Value = serde_json::from_str(&interrupted_json("SIGTERM", 143)).unwrap();
        assert_eq!(v["event"], "interrupted");
        assert_eq!(v["signal"], "SIGTERM");
        assert_eq!(v["exit_code"], 143);
    }

    #[test]
    fn plain_lines_name_the_step_and_the_next_delay() {
        let started = Event::StepStarted {
            step: "db".into(),
            action: "init.wait_tcp",
            target: "tcp 127.0.0.1:5432".into(),
            max_attempts: 4,
            timeout: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            plain_line(&started).unwrap().1,
            "rebound: [db] tcp 127.0.0.1:5432 (up to 4 attempts, timeout 1m)"
        );
        let failed = Event::AttemptFailed {
            step: "db".into(),
            attempt: 1,
            error: "connection refused".into(),
            next_delay: Some(Duration::from_millis(250)),
        };
        assert_eq!(
            plain_line(&failed).unwrap().1,
            "rebound: [db] attempt 1 failed: connection refused; retrying in 250ms"
        );
        let out = Event::Output {
            step: "m".into(),
            stream: Stream::Stdout,
            line: "hi".into(),
        };
        assert_eq!(plain_line(&out), Some((true, "[m] hi".to_owned())));
        let quick = Event::StepSucceeded {
            step: "f".into(),
            attempts: 1,
            elapsed: Duration::from_micros(400),
        };
        assert_eq!(
            plain_line(&quick).unwrap().1,
            "rebound: [f] ok (1 attempt, 0ms)"
        );
    }
}
