//! What the tests share: a throwaway PostgreSQL ([`pg`]), opening each
//! backend for a case, settings, a clock the test moves, and the handlers
//! the worker cases use.
#![allow(dead_code)]

pub mod pg;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebound_recovery::{
    AnyJournal, Clock, Job, JournalAddress, Migrator, RecoveryConfig, RollbackHandler, SystemClock,
};

/// Settings whose recorded failures are due (almost) at once.
pub fn quick() -> RecoveryConfig {
    RecoveryConfig {
        initial_delay: Duration::from_millis(1),
        ..RecoveryConfig::default()
    }
}

/// A fresh database on this binary's PostgreSQL cluster, named after
/// `prefix`; its URL.
pub async fn fresh_db(prefix: &'static str) -> String {
    tokio::task::spawn_blocking(move || pg::Pg::shared().fresh_db(prefix))
        .await
        .unwrap()
}

/// A loopback port nothing listens on (free when probed).
pub fn free_port() -> u16 {
    pg::free_port()
}

/// A journal and whatever must outlive it.
pub struct Fixture {
    pub journal: AnyJournal,
    _dir: Option<tempfile::TempDir>,
}

impl Deref for Fixture {
    type Target = AnyJournal;
    fn deref(&self) -> &AnyJournal {
        &self.journal
    }
}

/// The backend a shared case runs against.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh, empty journal of this backend.
    pub async fn open(self, config: RecoveryConfig) -> Fixture {
        match self {
            Self::Memory => memory(config).await,
            Self::Sqlite => sqlite(config).await,
            Self::Postgres => postgres(config).await,
        }
    }
}

pub async fn memory(config: RecoveryConfig) -> Fixture {
    let journal = AnyJournal::open(&JournalAddress::Memory, config)
        .await
        .unwrap();
    Fixture {
        journal,
        _dir: None,
    }
}

pub async fn sqlite(config: RecoveryConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let address = JournalAddress::Sqlite(dir.path().join("journal.db"));
    let journal = AnyJournal::open(&address, config).await.unwrap();
    Fixture {
        journal,
        _dir: Some(dir),
    }
}

pub async fn postgres(config: RecoveryConfig) -> Fixture {
    let url = fresh_db("suite").await;
    let journal = AnyJournal::open(&JournalAddress::Postgres(url), config)
        .await
        .unwrap();
    Fixture {
        journal,
        _dir: None,
    }
}

/// A clock the test moves by hand, starting at the real time.
#[derive(Clone)]
pub struct ManualClock(pub Arc<AtomicU64>);

impl ManualClock {
    pub fn new() -> Self {
        Self(Arc::new(AtomicU64::new(SystemClock.now_ms())))
    }
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now()
    }
}

/// What the handlers were asked to do, as `migrate:TARGET` / `rollback:SOURCE`.
#[derive(Clone, Default)]
pub struct Calls(pub Arc<Mutex<Vec<String>>>);

impl Calls {
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

/// Fails with the queued errors, one per call, then succeeds.
pub struct Scripted {
    pub calls: Calls,
    pub errors: Mutex<VecDeque<io::Error>>,
    pub rollback_error: Option<String>,
}

impl Scripted {
    pub fn new(errors: Vec<io::Error>) -> Self {
        Self {
            calls: Calls::default(),
            errors: Mutex::new(errors.into()),
            rollback_error: None,
        }
    }
}

impl Migrator for &Scripted {
    type Error = io::Error;
    async fn migrate(&self, job: &Job) -> io::Result<()> {
        self.calls.push(format!("migrate:{}", job.target));
        match self.errors.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl RollbackHandler for &Scripted {
    type Error = io::Error;
    async fn rollback(&self, job: &Job) -> io::Result<()> {
        assert!(
            job.snapshot.is_some(),
            "a rollback always carries its snapshot"
        );
        self.calls.push(format!("rollback:{}", job.source));
        match &self.rollback_error {
            Some(e) => Err(io::Error::other(e.clone())),
            None => Ok(()),
        }
    }
}

/// Counts runs per migration; every rollback fails.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<Mutex<HashMap<String, u32>>>);

impl Migrator for Counter {
    type Error = std::io::Error;
    async fn migrate(&self, job: &Job) -> std::io::Result<()> {
        *self
            .0
            .lock()
            .unwrap()
            .entry(job.migration.clone())
            .or_default() += 1;
        Ok(())
    }
}

impl RollbackHandler for Counter {
    type Error = std::io::Error;
    async fn rollback(&self, _: &Job) -> std::io::Result<()> {
        Err(std::io::Error::other("no rollbacks in this test"))
    }
}
