//! Opening each backend for a case, and the handlers the worker cases use.

use std::collections::VecDeque;
use std::io;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rebound_recovery::{
    AnyJournal, Clock, Job, JournalAddress, Migrator, RecoveryConfig, RollbackHandler, SystemClock,
};

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
    let url = tokio::task::spawn_blocking(|| crate::pg::Pg::shared().fresh_db("suite"))
        .await
        .unwrap();
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
