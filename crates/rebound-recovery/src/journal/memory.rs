//! A journal in this process's memory, for tests and embedding.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::{Claim, Journal, check_lease, lease_end};
use crate::error::{ConfigError, JournalError};
use crate::model::transition;
use crate::model::{Attempt, FailureReport, Outcome, Recovery, RecoveryConfig, RecoveryState};

/// Recoveries kept in a map behind a mutex; gone when dropped.
///
/// ```
/// let journal = rebound_recovery::MemoryJournal::new(Default::default()).unwrap();
/// # let _ = journal;
/// ```
#[derive(Debug)]
pub struct MemoryJournal {
    config: RecoveryConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    recoveries: BTreeMap<String, Recovery>,
    history: BTreeMap<String, VecDeque<Attempt>>,
}

impl State {
    fn store(&mut self, rec: &Recovery, entry: Attempt, limit: u32) {
        self.recoveries.insert(rec.migration.clone(), rec.clone());
        let history = self.history.entry(rec.migration.clone()).or_default();
        history.push_back(entry);
        while history.len() > limit as usize {
            history.pop_front();
        }
    }
}

impl MemoryJournal {
    /// An empty journal with these settings.
    ///
    /// ```
    /// use rebound_recovery::{MemoryJournal, RecoveryConfig};
    /// assert!(MemoryJournal::new(RecoveryConfig::default()).is_ok());
    /// let bad = RecoveryConfig { history_limit: 0, ..Default::default() };
    /// assert!(MemoryJournal::new(bad).is_err());
    /// ```
    pub fn new(config: RecoveryConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change:
        // every change is computed first and stored with plain inserts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Journal for MemoryJournal {
    fn describe(&self) -> String {
        "memory:".to_owned()
    }

    fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    async fn record(&self, report: FailureReport, now_ms: u64) -> Result<Recovery, JournalError> {
        let mut state = self.lock();
        let existing = state.recoveries.get(&report.migration).cloned();
        if let Some(existing) = &existing {
            transition::check_same_migration(existing, &report)?;
        }
        let (rec, entry) = transition::record_failure(existing, &report, &self.config, now_ms);
        state.store(&rec, entry, self.config.history_limit);
        Ok(rec)
    }

    async fn get(&self, migration: &str) -> Result<Option<Recovery>, JournalError> {
        Ok(self.lock().recoveries.get(migration).cloned())
    }

    async fn history(&self, migration: &str) -> Result<Vec<Attempt>, JournalError> {
        Ok(self
            .lock()
            .history
            .get(migration)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn list(&self, state: Option<RecoveryState>) -> Result<Vec<Recovery>, JournalError> {
        Ok(self
            .lock()
            .recoveries
            .values()
            .filter(|r| state.is_none_or(|s| r.state == s))
            .cloned()
            .collect())
    }

    async fn due(&self, now_ms: u64) -> Result<Vec<Recovery>, JournalError> {
        let mut due: Vec<Recovery> = self
            .lock()
            .recoveries
            .values()
            .filter(|r| r.is_claimable(now_ms))
            .cloned()
            .collect();
        due.sort_by_key(due_at);
        Ok(due)
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, JournalError> {
        let mut state = self.lock();
        let mut due: Vec<&Recovery> = state
            .recoveries
            .values()
            .filter(|r| r.is_claimable(now_ms))
            .collect();
        due.sort_by_key(|r| due_at(r));
        let ids: Vec<String> = due
            .iter()
            .take(limit)
            .map(|r| r.migration.clone())
            .collect();
        let expires = lease_end(now_ms, lease);
        let mut claims = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(rec) = state.recoveries.remove(&id) {
                let rec = transition::claim(rec, owner, now_ms, expires);
                claims.push(Claim {
                    recovery: rec.clone(),
                    owner: owner.to_owned(),
                    claim_seq: rec.claim_seq,
                    lease_expires_ms: expires,
                });
                state.recoveries.insert(id, rec);
            }
        }
        Ok(claims)
    }

    async fn renew(
        &self,
        claim: &Claim,
        now_ms: u64,
        lease: Duration,
    ) -> Result<Claim, JournalError> {
        let mut state = self.lock();
        let rec = state
            .recoveries
            .get_mut(&claim.recovery.migration)
            .ok_or_else(|| JournalError::NotFound(claim.recovery.migration.clone()))?;
        check_lease(rec, claim)?;
        let expires = lease_end(now_ms, lease);
        rec.lease_expires_ms = Some(expires);
        rec.updated_ms = now_ms;
        Ok(Claim {
            recovery: rec.clone(),
            lease_expires_ms: expires,
            ..claim.clone()
        })
    }

    async fn release(&self, claim: &Claim, now_ms: u64) -> Result<Recovery, JournalError> {
        let mut state = self.lock();
        let rec = state
            .recoveries
            .get_mut(&claim.recovery.migration)
            .ok_or_else(|| JournalError::NotFound(claim.recovery.migration.clone()))?;
        check_lease(rec, claim)?;
        *rec = transition::release(rec.clone(), now_ms);
        Ok(rec.clone())
    }

    async fn complete(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        let mut state = self.lock();
        let current = state
            .recoveries
            .get(&claim.recovery.migration)
            .cloned()
            .ok_or_else(|| JournalError::NotFound(claim.recovery.migration.clone()))?;
        check_lease(&current, claim)?;
        let (rec, entry) = transition::complete(current, outcome, &self.config, now_ms);
        state.store(&rec, entry, self.config.history_limit);
        Ok(rec)
    }
}

/// The time a claimable recovery became claimable.
pub(crate) fn due_at(r: &Recovery) -> (u64, String) {
    let at = match r.state {
        RecoveryState::Running => r.lease_expires_ms,
        _ => r.next_attempt_ms,
    };
    (at.unwrap_or(0), r.migration.clone())
}
