//! PostgreSQL wake-ups across processes: `NOTIFY` on each change that can
//! make work claimable, `LISTEN` on a connection of its own.
//!
//! Every change that can make a recovery claimable (a record, a cancel, a
//! completion, a release, a claim that took something; not a lease
//! renewal) is followed by `NOTIFY rebound_recovery` ([`CHANNEL`]) on the
//! journal's connection. A worker process keeps one more connection
//! (`application_name` [`APPLICATION_NAME`]) that `LISTEN`s on the
//! channel and raises the journal handle's [`Wake`] on each notification.
//! It connects with the journal's settings, its TLS (`sslmode`,
//! `sslrootcert`) included, every time it connects again too.
//!
//! When that connection drops (the server restarted, an administrator
//! ended it with `pg_terminate_backend`), the listener says so in the log
//! and connects again after rebound-retry's exponential backoff (100 ms
//! doubling to 30 s, with jitter). Nothing is lost meanwhile: the workers
//! fall back to their poll interval, and the listener raises the signal
//! once it is back, so that what was recorded while it was away is
//! claimed at once.
//!
//! Behind a connection pooler in transaction mode (PgBouncer), `LISTEN`
//! does not work: turn it off (`rebound recovery run --no-listen`) and
//! rely on polling.

use tokio_postgres::{AsyncMessage, Client};

use super::postgres::tls::{MakeRustls, RustlsStream};
use super::wake::{ChangeListener, Wake};

/// The notification channel.
pub const CHANNEL: &str = "rebound_recovery";

/// The `application_name` of the `LISTEN` connection, by which an
/// operator (or a test) finds it in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "rebound-listen";

/// Sends `NOTIFY` on [`CHANNEL`] over `client`, outside any transaction.
/// Best effort: the change it announces is committed already, and the
/// listeners' poll interval covers a lost notification.
pub(crate) async fn notify(client: &Client, journal: &str) {
    if let Err(e) = client.batch_execute(&format!("NOTIFY {CHANNEL}")).await {
        tracing::debug!(journal, error = %e, "NOTIFY failed; listeners will poll");
    }
}

/// Starts listening with the connection settings `config` and TLS
/// connector `tls` (the journal's, so the same `sslmode`), raising `wake`
/// on each notification. The first connection is tried before this
/// returns (so that a change made after it returns is heard); when it
/// fails, the listener says so and keeps trying in the background.
pub(crate) async fn listen(
    config: &tokio_postgres::Config,
    tls: MakeRustls,
    journal: String,
    wake: Wake,
) -> ChangeListener {
    let mut config = config.clone();
    config.application_name(APPLICATION_NAME);
    let first = connect(&config, &tls).await;
    let task = tokio::spawn(run(config, tls, journal, wake, first));
    ChangeListener::new(task, "LISTEN")
}

type Connection = tokio_postgres::Connection<tokio_postgres::Socket, RustlsStream>;

/// Connects and subscribes: the client (kept to hold the connection open)
/// and the connection to drive.
async fn connect(
    config: &tokio_postgres::Config,
    tls: &MakeRustls,
) -> Result<(Client, Connection), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    {
        // The LISTEN needs the connection driven while it is sent.
        let sql = format!("LISTEN {CHANNEL}");
        let subscribe = client.batch_execute(&sql);
        tokio::pin!(subscribe);
        loop {
            tokio::select! {
                done = &mut subscribe => {
                    done?;
                    break;
                }
                message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    // The other branch reports why it closed.
                    None => {}
                },
            }
        }
    }
    Ok((client, connection))
}

async fn run(
    config: tokio_postgres::Config,
    tls: MakeRustls,
    journal: String,
    wake: Wake,
    first: Result<(Client, Connection), tokio_postgres::Error>,
) {
    let mut delays = super::reconnect_backoff();
    let mut current = match first {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(
                journal = %journal,
                error = %super::postgres::error_text(&e),
                "cannot LISTEN for recoveries; polling meanwhile, and trying again"
            );
            None
        }
    };
    loop {
        if let Some((client, connection)) = current.take() {
            delays = super::reconnect_backoff();
            let why = drive(connection, &wake).await;
            drop(client);
            // Whoever waits looks at the journal now: a reader finds out
            // at once whether the whole database went away.
            wake.signal();
            tracing::warn!(
                journal = %journal,
                error = %why,
                "lost the LISTEN connection; polling meanwhile, and reconnecting"
            );
        }
        let delay = delays.next().unwrap_or(super::RECONNECT_MAX_WAIT);
        tokio::time::sleep(delay).await;
        match connect(&config, &tls).await {
            Ok(c) => {
                tracing::warn!(journal = %journal, "LISTEN connection back");
                // What was recorded while it was away: claim it now.
                wake.signal();
                current = Some(c);
            }
            Err(e) => tracing::warn!(
                journal = %journal,
                error = %super::postgres::error_text(&e),
                "cannot LISTEN for recoveries; polling meanwhile, and trying again \
                 (waited {} ms before this try)",
                delay.as_millis()
            ),
        }
    }
}

/// Drives the listening connection until it ends, raising `wake` on each
/// notification; returns why it ended.
async fn drive(mut connection: Connection, wake: &Wake) -> String {
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(_))) => wake.signal(),
            Some(Ok(_)) => {}
            Some(Err(e)) => return super::postgres::error_text(&e),
            None => return "the server closed the connection".to_owned(),
        }
    }
}
