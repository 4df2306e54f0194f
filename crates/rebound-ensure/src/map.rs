//! [`EnsureMap`]: many runtimes by name.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use crate::{Ensure, Response};

/// A keyed registry of runtimes, so one agent manages many.
///
/// Built once, then shared (lookups take no lock); keys iterate in order.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use rebound_ensure::{Ensure, EnsureConfig, EnsureMap, ProbeOutcome, ReadyInfo, StartError, Status};
/// let mut map = EnsureMap::new();
/// map.insert("docker".to_owned(), Ensure::new(
///     EnsureConfig::default(),
///     || async { Ok::<_, StartError>(ReadyInfo::new("tcp://127.0.0.1:2375", "")) },
///     || async { ProbeOutcome::Down("down".into()) },
/// ));
/// assert_eq!(map.ensure("docker", true).await.map(|r| r.status()), Some(Status::Starting));
/// assert!(map.ensure("podman", true).await.is_none());
/// assert_eq!(map.keys().collect::<Vec<_>>(), ["docker"]);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct EnsureMap<K> {
    entries: BTreeMap<K, Ensure>,
}

impl<K: Ord> Default for EnsureMap<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord> EnsureMap<K> {
    /// An empty registry, to fill with [`insert`](Self::insert).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let runtime = |endpoint: &'static str| Ensure::new(EnsureConfig::default(),
    /// #     move || async move { Ok::<_, StartError>(ReadyInfo::new(endpoint, "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let mut map = rebound_ensure::EnsureMap::new();
    /// for (name, endpoint) in [("docker", "unix:/run/docker.sock"), ("podman", "unix:/run/podman.sock")] {
    ///     map.insert(name.to_owned(), runtime(endpoint));
    /// }
    /// assert_eq!(map.len(), 2);
    /// # }
    /// ```
    pub fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a runtime; returns the one it replaced.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let mut map = rebound_ensure::EnsureMap::new();
    /// assert!(map.insert("x", e.clone()).is_none());
    /// assert!(map.insert("x", e).is_some());
    /// # }
    /// ```
    pub fn insert(&mut self, key: K, runtime: Ensure) -> Option<Ensure> {
        self.entries.insert(key, runtime)
    }

    /// The runtime under `key`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let mut map = rebound_ensure::EnsureMap::new();
    /// map.insert("x".to_owned(), e);
    /// assert!(map.get("x").is_some());
    /// assert!(map.get("y").is_none());
    /// # }
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<&Ensure>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries.get(key)
    }

    /// [`Ensure::ensure`] on the runtime under `key`; `None` if there is none.
    pub async fn ensure<Q>(&self, key: &Q, start_if_needed: bool) -> Option<Response>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.entries.get(key) {
            Some(runtime) => Some(runtime.ensure(start_if_needed).await),
            None => None,
        }
    }

    /// The keys, in order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let mut map = rebound_ensure::EnsureMap::new();
    /// map.insert("b", e.clone());
    /// map.insert("a", e);
    /// assert_eq!(map.keys().copied().collect::<Vec<_>>(), ["a", "b"]);
    /// # }
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    /// Every runtime with its key, in key order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let mut map = rebound_ensure::EnsureMap::new();
    /// map.insert("a", e);
    /// for (name, runtime) in map.iter() {
    ///     assert_eq!((*name, runtime.state().kind().as_str()), ("a", "not_started"));
    /// }
    /// # }
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Ensure)> {
        self.entries.iter()
    }

    /// How many runtimes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let mut map = rebound_ensure::EnsureMap::new();
    /// map.insert("a", e);
    /// assert_eq!(map.len(), 1);
    /// # }
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none (an agent with nothing to manage).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # use rebound_ensure::{Ensure, EnsureConfig, ProbeOutcome, ReadyInfo, StartError};
    /// # let e = Ensure::new(EnsureConfig::default(),
    /// #     || async { Ok::<_, StartError>(ReadyInfo::new("unix:/run/x.sock", "up")) },
    /// #     || async { ProbeOutcome::Down("no answer".into()) });
    /// let mut map = rebound_ensure::EnsureMap::new();
    /// assert!(map.is_empty());
    /// map.insert("x", e);
    /// assert!(!map.is_empty());
    /// # }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
