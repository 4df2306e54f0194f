//! `rebound ensure --watch NAME`: print a runtime's events until
//! interrupted.

use std::time::Duration;

use rebound_retry::presets;
use serde_json::json;

use super::{Args, check_handshake, refused};
use crate::agent::client::{CallError, Client};
use crate::agent::protocol::{RuntimeEntry, capability};
use crate::agent::sse;
use crate::exit::CliError;
use crate::output::{StdoutError, err, out};

/// How long connecting and the handshake may take.
const CALL: Duration = Duration::from_secs(10);

/// Prints events until SIGINT (130) or SIGTERM (143).
pub(super) async fn run(client: &Client, args: &Args) -> anyhow::Result<i32> {
    let signals = crate::signal::stop_exit_code();
    tokio::select! {
        code = signals => Ok(code),
        result = follow(client, args) => result,
    }
}

async fn follow(client: &Client, args: &Args) -> anyhow::Result<i32> {
    let backoff = presets::connection()
        .forever()
        .build()
        .map_err(|e| anyhow::anyhow!("connection preset: {e}"))?;
    let mut retry = 0u32;
    let handshake = loop {
        match client.handshake(CALL).await {
            Ok(handshake) => break handshake,
            Err(CallError::Unreachable(why)) => unreachable(args, &why)?,
            Err(CallError::Refused { status, reply }) => {
                return refused(
                    &mut super::Progress::new(&args.name, args.json),
                    status,
                    reply,
                );
            }
            Err(CallError::Fatal(why)) => return Err(CliError::usage(why).into()),
        }
        retry = retry.saturating_add(1);
        tokio::time::sleep(backoff.sample(retry)).await;
    };
    let Some(handshake) = handshake else {
        return Err(CliError::usage(format!(
            "the agent at {} has no handshake (GET /v1 is 404): it predates watch streams; upgrade it",
            args.agent
        ))
        .into());
    };
    check_handshake(&handshake, args)?;
    if !handshake.can(capability::WATCH) {
        return Err(CliError::usage(format!(
            "the agent at {} does not offer `watch` (it offers: {})",
            args.agent,
            handshake.capabilities.join(", ")
        ))
        .into());
    }
    retry = 0;
    loop {
        match client.watch(&args.name, CALL).await {
            Ok(mut events) => {
                retry = 0;
                loop {
                    match events.next().await {
                        Ok(Some(event)) => print(args, &event)?,
                        Ok(None) => {
                            unreachable(args, "the agent ended the event stream")?;
                            break;
                        }
                        Err(e) => {
                            unreachable(args, &super::call_error_text(e))?;
                            break;
                        }
                    }
                }
            }
            Err(CallError::Refused { status, reply }) => {
                return refused(
                    &mut super::Progress::new(&args.name, args.json),
                    status,
                    reply,
                );
            }
            Err(CallError::Unreachable(why) | CallError::Fatal(why)) => unreachable(args, &why)?,
        }
        retry = retry.saturating_add(1);
        tokio::time::sleep(backoff.sample(retry)).await;
    }
}

fn unreachable(args: &Args, why: &str) -> Result<(), StdoutError> {
    if args.json {
        out!("{}", json!({"event": "unreachable", "error": why}))?;
    } else {
        err!("rebound: {}: agent unreachable: {why}", args.name);
    }
    Ok(())
}

/// One event: a line for people, or its data with `"event"` added.
fn print(args: &Args, event: &sse::Event) -> Result<(), StdoutError> {
    let Ok(entry) = serde_json::from_str::<RuntimeEntry>(&event.data) else {
        if args.json {
            out!("{}", json!({"event": event.event, "data": event.data}))?;
        } else {
            out!("{}: {}: {}", args.name, event.event, event.data)?;
        }
        return Ok(());
    };
    if args.json {
        let mut value = json!(entry);
        value["event"] = json!(event.event);
        out!("{value}")?;
        return Ok(());
    }
    let mut line = format!("{}: {}", entry.name, event.event);
    if event.event != entry.state {
        line.push_str(&format!(" ({})", entry.state));
    }
    if let Some(endpoint) = &entry.endpoint {
        line.push(' ');
        line.push_str(endpoint);
    }
    if let Some(message) = entry.message.as_deref().filter(|m| !m.is_empty()) {
        line.push_str(": ");
        line.push_str(message);
    }
    if let Some(after) = entry.retry_after_ms {
        line.push_str(&format!(
            " (next start in {})",
            humantime::format_duration(Duration::from_millis(after))
        ));
    }
    out!("{line}")
}
