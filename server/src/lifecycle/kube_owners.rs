//! Owner tracking through the Kubernetes API (`--kubernetes`): one watch of Spark's pods (those
//! labelled `spark-role`), across the namespaces the server may see.
//!
//! An owner is found in two ways:
//! - by the bundle label (`sparkstage.io/bundle=<id>`, which `sparkstage submit` sets on the
//!   driver and the executors and the server records in the owner): the pods of the namespace
//!   with that label value, kept in an index;
//! - by its labels, for an owner without the bundle label (the fork's form: a namespace and the
//!   labels its driver pod carries, `ownerType: Pod`): the pods of the namespace that carry all of
//!   them. An owner without labels is never matched (it would match every pod).
//!
//! The watch (`kube::runtime::watcher`: a list, then a watch from its resourceVersion, resumed
//! by the watcher itself when the API server ends it) keeps every watched pod's namespace and
//! labels, and when pods went (a day's worth). Until its first list is complete, and from a
//! failure of the watch until a new list is complete, every owner is
//! [`OwnerState::Unknown`]: nothing is deleted on an owner's account while the cluster cannot be
//! seen. A failed watch is started again after a backoff (1 s, doubling, at most 1 min).
//!
//! The server's RBAC: `get`, `list`, `watch` on pods (cluster-wide, or in the namespaces it
//! serves) and `get` on namespaces.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::Api;
use kube::runtime::watcher;
use sparkstage_api::bundles::Owner;

use super::owners::{OwnerState, Owners};
use crate::clock::SharedClock;

/// Namespace and bundle label value: one application's pods.
type Key = (String, String);
type Labels = BTreeMap<String, String>;

/// A watched pod: its namespace and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    namespace: String,
    labels: Labels,
}

/// How long the time pods went is remembered (a bundle is deleted `--owner-grace` after it, so
/// this only has to outlive that and a failing sweep).
const FORGET_GONE_AFTER: chrono::Duration = chrono::Duration::days(1);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What to watch, and how owners are matched.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    /// The label selector of the watch (`spark-role` in the server: every Spark pod).
    pub selector: String,
    /// The label whose value names a bundle (`sparkstage.io/bundle` in the server).
    pub bundle_label: String,
}

#[derive(Debug, Default)]
struct Tracked {
    /// The watch's view is complete and current.
    synced: bool,
    /// When the first complete view was had: the "gone since" of owners never seen with a pod.
    since: Option<DateTime<Utc>>,
    /// Every watched pod, by uid.
    pods: HashMap<String, Seen>,
    /// The pods that carry the bundle label, by namespace and value.
    by_key: HashMap<Key, HashSet<String>>,
    /// When each bundle key's last pod went.
    gone: HashMap<Key, DateTime<Utc>>,
    /// Pods that went, oldest first, for owners matched by their labels.
    departed: VecDeque<(Seen, DateTime<Utc>)>,
    /// A list in progress (between `Init` and `InitDone`).
    listing: Option<HashMap<String, Seen>>,
}

impl Tracked {
    fn key(seen: &Seen, bundle_label: &str) -> Option<Key> {
        let value = seen.labels.get(bundle_label)?;
        Some((seen.namespace.clone(), value.clone()))
    }

    /// `uid` now is `seen` (`None`: it went).
    fn set(&mut self, uid: &str, seen: Option<Seen>, bundle_label: &str, now: DateTime<Utc>) {
        let old = match &seen {
            Some(seen) => self.pods.insert(uid.to_owned(), seen.clone()),
            None => self.pods.remove(uid),
        };
        if old == seen {
            return;
        }
        if let Some(old) = old {
            if let Some(key) = Self::key(&old, bundle_label)
                && let Some(uids) = self.by_key.get_mut(&key)
            {
                uids.remove(uid);
                if uids.is_empty() {
                    self.by_key.remove(&key);
                    self.gone.insert(key, now);
                }
            }
            // Gone, or relabelled: owners matched by the old labels saw it go.
            self.departed.push_back((old, now));
        }
        if let Some(seen) = seen
            && let Some(key) = Self::key(&seen, bundle_label)
        {
            self.gone.remove(&key);
            self.by_key.entry(key).or_default().insert(uid.to_owned());
        }
    }

    fn apply(&mut self, event: watcher::Event<Pod>, bundle_label: &str, now: DateTime<Utc>) {
        match event {
            watcher::Event::Init => self.listing = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(listing), Some((uid, seen))) = (&mut self.listing, identify(&pod)) {
                    listing.insert(uid, seen);
                }
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                // Pods that went while the watch did not look: gone now, as far as we know.
                let went: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|uid| !listed.contains_key(*uid))
                    .cloned()
                    .collect();
                for uid in went {
                    self.set(&uid, None, bundle_label, now);
                }
                for (uid, seen) in listed {
                    self.set(&uid, Some(seen), bundle_label, now);
                }
                self.synced = true;
                self.since.get_or_insert(now);
            }
            watcher::Event::Apply(pod) => {
                if let Some((uid, seen)) = identify(&pod) {
                    self.set(&uid, Some(seen), bundle_label, now);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some((uid, _)) = identify(&pod) {
                    self.set(&uid, None, bundle_label, now);
                }
            }
        }
        self.gone.retain(|_, at| now - *at < FORGET_GONE_AFTER);
        while self
            .departed
            .front()
            .is_some_and(|(_, at)| now - *at >= FORGET_GONE_AFTER)
        {
            self.departed.pop_front();
        }
    }

    fn state(&self, owner: &Owner, bundle_label: &str) -> OwnerState {
        let Some(namespace) = &owner.namespace else {
            return OwnerState::Unknown;
        };
        if !self.synced {
            return OwnerState::Unknown;
        }
        let gone_since = |at: Option<DateTime<Utc>>| match at.or(self.since) {
            Some(since) => OwnerState::Gone { since },
            None => OwnerState::Unknown,
        };
        if let Some(value) = owner.labels.get(bundle_label) {
            let key = (namespace.clone(), value.clone());
            return match self.by_key.get(&key) {
                Some(uids) if !uids.is_empty() => {
                    OwnerState::Pods(u32::try_from(uids.len()).unwrap_or(u32::MAX))
                }
                _ => gone_since(self.gone.get(&key).copied()),
            };
        }
        if owner.labels.is_empty() {
            return OwnerState::Unknown;
        }
        let matches = |seen: &Seen| {
            seen.namespace == *namespace
                && owner
                    .labels
                    .iter()
                    .all(|(k, v)| seen.labels.get(k) == Some(v))
        };
        let pods = self.pods.values().filter(|seen| matches(seen)).count();
        if pods > 0 {
            return OwnerState::Pods(u32::try_from(pods).unwrap_or(u32::MAX));
        }
        let last = self
            .departed
            .iter()
            .filter(|(seen, _)| matches(seen))
            .map(|(_, at)| *at)
            .max();
        gone_since(last)
    }
}

/// A pod's uid, namespace and labels.
fn identify(pod: &Pod) -> Option<(String, Seen)> {
    let meta = &pod.metadata;
    let uid = meta.uid.clone().or_else(|| meta.name.clone())?;
    Some((
        uid,
        Seen {
            namespace: meta.namespace.clone()?,
            labels: meta.labels.clone().unwrap_or_default(),
        },
    ))
}

/// Owner tracking by a watch of the pods [`WatchSpec`] selects.
pub struct KubeOwners {
    client: kube::Client,
    spec: WatchSpec,
    tracked: Mutex<Tracked>,
    clock: SharedClock,
}

impl std::fmt::Debug for KubeOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeOwners")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl KubeOwners {
    /// Starts tracking the pods `spec` selects. The watch runs until the returned task is
    /// aborted.
    pub fn start(
        client: kube::Client,
        spec: WatchSpec,
        clock: SharedClock,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let owners = Arc::new(Self {
            client,
            spec,
            tracked: Mutex::new(Tracked::default()),
            clock,
        });
        let task = tokio::spawn(Arc::clone(&owners).watch());
        (owners, task)
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn watch(self: Arc<Self>) {
        let mut backoff = BACKOFF_START;
        loop {
            let api: Api<Pod> = Api::all(self.client.clone());
            let config = watcher::Config::default().labels(&self.spec.selector);
            let mut events = std::pin::pin!(watcher(api, config));
            let failure = loop {
                match events.next().await {
                    Some(Ok(event)) => {
                        let synced = matches!(event, watcher::Event::InitDone);
                        self.tracked()
                            .apply(event, &self.spec.bundle_label, self.clock.now());
                        if synced {
                            tracing::info!(selector = %self.spec.selector, "owner tracking sees the cluster's pods");
                            backoff = BACKOFF_START;
                        }
                    }
                    Some(Err(e)) => break e.to_string(),
                    None => break "the watch ended".to_owned(),
                }
            };
            {
                let mut tracked = self.tracked();
                tracked.synced = false;
                tracked.listing = None;
            }
            tracing::warn!(
                error = %failure,
                retry_in = ?backoff,
                "owner tracking lost the pods' watch: no bundle is deleted on its owner's account \
                 until it sees them again"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

impl Owners for KubeOwners {
    fn state(&self, owner: &Owner) -> OwnerState {
        self.tracked().state(owner, &self.spec.bundle_label)
    }

    fn namespace_gone<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let api: Api<Namespace> = Api::all(self.client.clone());
            match api.get_opt(namespace).await {
                Ok(found) => found.is_none(),
                Err(e) => {
                    tracing::debug!(%namespace, error = %e, "cannot tell whether a namespace exists");
                    false
                }
            }
        })
    }
}
