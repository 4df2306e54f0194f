//! A journal in this process's memory, for tests and embedding.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::targets::{self, Touch};
use super::wake::{Wake, due_time, earliest_after};
use super::{
    Claim, Journal, abandoned, cancelled, claimed, lease_end, lost_too_often, prunable, released,
    renewed,
};
use crate::error::{ConfigError, JournalError};
use crate::model::{Admission, OpenTargets, TargetBreaker};
use crate::model::{Attempt, FailureReport, Outcome, Recovery, RecoveryConfig, RecoveryState};

/// Recoveries kept in a map behind a mutex; gone when dropped.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rebound_recovery::{FailureKind, FailureReport, Journal, MemoryJournal};
/// let journal = MemoryJournal::new(Default::default()).unwrap();
/// journal.record(FailureReport::new("m", "web", "a", "b", FailureKind::Timeout, "slow"), 0).await.unwrap();
/// assert_eq!(journal.history("m").await.unwrap().len(), 1);
/// # });
/// ```
#[derive(Debug)]
pub struct MemoryJournal {
    config: RecoveryConfig,
    state: Mutex<State>,
    /// Raised after each change (see [`Journal::wake`]).
    wake: Wake,
}

#[derive(Debug, Default)]
struct State {
    recoveries: BTreeMap<String, Recovery>,
    history: BTreeMap<String, VecDeque<Attempt>>,
    /// The breaker per target node.
    breakers: BTreeMap<String, TargetBreaker>,
}

impl State {
    /// Stores `rec`, and `entry` in its history (keeping the last `limit`).
    fn store(&mut self, rec: &Recovery, entry: Option<Attempt>, limit: u32) {
        self.recoveries.insert(rec.migration.clone(), rec.clone());
        if let Some(entry) = entry {
            let history = self.history.entry(rec.migration.clone()).or_default();
            history.push_back(entry);
            while history.len() > limit as usize {
                history.pop_front();
            }
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
            wake: Wake::new(),
        })
    }

    /// Shares `wake` with other journal handles of this process: each
    /// raises it after its changes (see [`Journal::wake`]).
    ///
    /// ```
    /// use rebound_recovery::{Journal, MemoryJournal, journal::Wake};
    /// let shared = Wake::new();
    /// let journal = MemoryJournal::new(Default::default()).unwrap().with_wake(shared.clone());
    /// assert!(journal.wake().unwrap().same_as(&shared));
    /// ```
    #[must_use]
    pub fn with_wake(mut self, wake: Wake) -> Self {
        self.wake = wake;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change:
        // every change is computed first and stored with plain inserts.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One change of `migration`, under the lock: `apply` gets the
    /// recovery as it is and returns it changed, with the history entry
    /// to add, if any.
    fn change<T>(
        &self,
        migration: &str,
        apply: impl FnOnce(Option<Recovery>) -> Result<(Recovery, Option<Attempt>, T), JournalError>,
    ) -> Result<T, JournalError> {
        let mut state = self.lock();
        let current = state.recoveries.get(migration).cloned();
        let (rec, entry, out) = apply(current)?;
        state.store(&rec, entry, self.config.history_limit);
        drop(state);
        self.wake.signal();
        Ok(out)
    }

    /// One change of `migration` that may count an outcome against a
    /// target's breaker, under the lock (see `journal::targets`): `touch`
    /// names the breaker from the recovery as it is, `apply` plans among
    /// the open nodes.
    fn change_targets(
        &self,
        migration: &str,
        now_ms: u64,
        touch: impl FnOnce(Option<&Recovery>) -> Result<Option<Touch>, JournalError>,
        apply: impl FnOnce(Option<Recovery>, &OpenTargets) -> Result<(Recovery, Attempt), JournalError>,
    ) -> Result<Recovery, JournalError> {
        let mut state = self.lock();
        let current = state.recoveries.get(migration).cloned();
        let changed = touch(current.as_ref())?.and_then(|t| {
            let row = state.breakers.get(t.node()).cloned();
            targets::counted(&t, row, &self.config, now_ms)
        });
        let open = {
            let rows: Vec<TargetBreaker> = state.breakers.values().cloned().collect();
            targets::open_view(&rows, changed.as_ref(), now_ms, &self.config)
        };
        let (rec, entry) = apply(current, &open)?;
        state.store(&rec, Some(entry), self.config.history_limit);
        if let Some(b) = changed {
            state.breakers.insert(b.node.clone(), b);
        }
        drop(state);
        self.wake.signal();
        Ok(rec)
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
        self.change_targets(
            &report.migration,
            now_ms,
            |_| Ok(targets::record_touch(&report, &self.config)),
            |existing, open| targets::recorded_among(existing, &report, &self.config, now_ms, open),
        )
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
        let lost: Vec<Recovery> = state
            .recoveries
            .values()
            .filter(|r| r.is_claimable(now_ms) && lost_too_often(r, &self.config))
            .cloned()
            .collect();
        for rec in lost {
            let (rec, entry) = abandoned(rec, now_ms);
            state.store(&rec, Some(entry), self.config.history_limit);
        }
        let mut due: Vec<&Recovery> = state
            .recoveries
            .values()
            .filter(|r| r.is_claimable(now_ms))
            .collect();
        due.sort_by_key(|r| due_at(r));
        // One recovery per workload at a time: skip a workload that has
        // another recovery running, or one claimed earlier in this batch.
        let mut busy: std::collections::BTreeSet<&str> = state
            .recoveries
            .values()
            .filter(|r| r.state == RecoveryState::Running && !r.is_claimable(now_ms))
            .map(|r| r.workload.as_str())
            .collect();
        let expired_running: Vec<(&str, &str)> = state
            .recoveries
            .values()
            .filter(|r| r.state == RecoveryState::Running && r.is_claimable(now_ms))
            .map(|r| (r.workload.as_str(), r.migration.as_str()))
            .collect();
        let mut ids: Vec<String> = Vec::new();
        for r in due {
            if ids.len() == limit {
                break;
            }
            // A running recovery whose lease ran out still counts as
            // running for the others of its workload, not for itself.
            let other_running = expired_running
                .iter()
                .any(|(w, m)| *w == r.workload && *m != r.migration);
            if busy.contains(r.workload.as_str()) || other_running {
                continue;
            }
            busy.insert(r.workload.as_str());
            ids.push(r.migration.clone());
        }
        let expires = lease_end(now_ms, lease);
        let mut claims = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(rec) = state.recoveries.remove(&id) {
                let claim = claimed(rec, owner, now_ms, expires);
                state.recoveries.insert(id, claim.recovery.clone());
                claims.push(claim);
            }
        }
        drop(state);
        if !claims.is_empty() {
            self.wake.signal();
        }
        Ok(claims)
    }

    async fn renew(
        &self,
        claim: &Claim,
        now_ms: u64,
        lease: Duration,
    ) -> Result<Claim, JournalError> {
        self.change(&claim.recovery.migration, |current| {
            let renewed = renewed(current, claim, now_ms, lease)?;
            Ok((renewed.recovery.clone(), None, renewed))
        })
    }

    async fn release(&self, claim: &Claim, now_ms: u64) -> Result<Recovery, JournalError> {
        self.change(&claim.recovery.migration, |current| {
            let rec = released(current, claim, now_ms)?;
            Ok((rec.clone(), None, rec))
        })
    }

    async fn complete(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        let seen = outcome.clone();
        self.change_targets(
            &claim.recovery.migration,
            now_ms,
            |current| targets::complete_touch(current, claim, &seen, &self.config),
            |current, open| {
                targets::completed_among(current, claim, outcome, &self.config, now_ms, open)
            },
        )
    }

    async fn cancel(
        &self,
        migration: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<Recovery, JournalError> {
        self.change(migration, |current| {
            let (rec, entry) = cancelled(current, migration, reason, now_ms)?;
            Ok((rec.clone(), Some(entry), rec))
        })
    }

    async fn prune(&self, before_ms: u64, states: &[RecoveryState]) -> Result<u64, JournalError> {
        let states = prunable(states)?;
        let mut state = self.lock();
        let doomed: Vec<String> = state
            .recoveries
            .values()
            .filter(|r| states.contains(&r.state) && r.updated_ms < before_ms)
            .map(|r| r.migration.clone())
            .collect();
        for id in &doomed {
            state.recoveries.remove(id);
            state.history.remove(id);
        }
        drop(state);
        if !doomed.is_empty() {
            self.wake.signal();
        }
        Ok(doomed.len() as u64)
    }

    async fn targets(&self) -> Result<Vec<TargetBreaker>, JournalError> {
        Ok(self.lock().breakers.values().cloned().collect())
    }

    async fn reset_target(&self, node: &str, now_ms: u64) -> Result<TargetBreaker, JournalError> {
        let mut state = self.lock();
        let breaker = state
            .breakers
            .get_mut(node)
            .ok_or_else(|| JournalError::UnknownTarget(node.to_owned()))?;
        breaker.succeed(now_ms);
        Ok(breaker.clone())
    }

    async fn admit_target(
        &self,
        node: &str,
        migration: &str,
        now_ms: u64,
        hold: Duration,
    ) -> Result<Admission, JournalError> {
        if !self.config.breaker.enabled {
            return Ok(Admission::Closed);
        }
        let hold_ms = lease_end(0, hold);
        Ok(match self.lock().breakers.get_mut(node) {
            Some(breaker) => breaker.admit(migration, now_ms, hold_ms),
            None => Admission::Closed,
        })
    }

    async fn next_due_after(&self, now_ms: u64) -> Result<Option<u64>, JournalError> {
        Ok(earliest_after(
            now_ms,
            self.lock().recoveries.values().map(due_time),
        ))
    }

    fn wake(&self) -> Option<Wake> {
        Some(self.wake.clone())
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
