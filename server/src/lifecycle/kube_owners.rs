//! Owner tracking through the Kubernetes API (`--kubernetes`): one watch of the pods that carry
//! the bundle label (`sparkstage.io/bundle`, set by `sparkstage submit` on the driver and the
//! executors), across the namespaces the server may see.
//!
//! The watch (`kube::runtime::watcher`: a list, then a watch from its resourceVersion, resumed
//! by the watcher itself when the API server ends it) keeps, per namespace and label value, the
//! pods that exist, and when the last of them went. Until its first list is complete, and from a
//! failure of the watch until a new list is complete, every owner is
//! [`OwnerState::Unknown`]: nothing is deleted on an owner's account while the cluster cannot be
//! seen. A failed watch is started again after a backoff (1 s, doubling, at most 1 min).
//!
//! Owners without the bundle label (the fork's API, which names its own pod labels) are not
//! tracked here: the ttl alone applies to them.
//!
//! The server's RBAC: `get`, `list`, `watch` on pods (cluster-wide, or in the namespaces it
//! serves) and `get` on namespaces.

use std::collections::{HashMap, HashSet};
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

/// Namespace and label value: one application's pods.
type Key = (String, String);

/// How long the time a key's last pod went is remembered (a bundle is deleted `--owner-grace`
/// after it, so this only has to outlive that and a failing sweep).
const FORGET_GONE_AFTER: chrono::Duration = chrono::Duration::days(1);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Tracked {
    /// The watch's view is complete and current.
    synced: bool,
    /// When the first complete view was had: the "gone since" of keys never seen with a pod.
    since: Option<DateTime<Utc>>,
    /// Pods (by uid) per key.
    pods: HashMap<Key, HashSet<String>>,
    /// When each key's last pod went.
    gone: HashMap<Key, DateTime<Utc>>,
    /// A list in progress (between `Init` and `InitDone`).
    listing: Option<HashMap<Key, HashSet<String>>>,
}

impl Tracked {
    fn apply(&mut self, event: watcher::Event<Pod>, label: &str, now: DateTime<Utc>) {
        match event {
            watcher::Event::Init => self.listing = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                if let (Some(listing), Some((key, uid))) =
                    (&mut self.listing, identify(&pod, label))
                {
                    listing.entry(key).or_default().insert(uid);
                }
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                // Keys whose pods went while the watch did not look: gone now, as far as we know.
                for key in self.pods.keys() {
                    if !listed.contains_key(key) {
                        self.gone.insert(key.clone(), now);
                    }
                }
                for key in listed.keys() {
                    self.gone.remove(key);
                }
                self.pods = listed;
                self.synced = true;
                self.since.get_or_insert(now);
            }
            watcher::Event::Apply(pod) => {
                if let Some((key, uid)) = identify(&pod, label) {
                    self.gone.remove(&key);
                    self.pods.entry(key).or_default().insert(uid);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some((key, uid)) = identify(&pod, label)
                    && let Some(uids) = self.pods.get_mut(&key)
                {
                    uids.remove(&uid);
                    if uids.is_empty() {
                        self.pods.remove(&key);
                        self.gone.insert(key, now);
                    }
                }
            }
        }
        self.gone.retain(|_, at| now - *at < FORGET_GONE_AFTER);
    }

    fn state(&self, key: &Key) -> OwnerState {
        if !self.synced {
            return OwnerState::Unknown;
        }
        match self.pods.get(key) {
            Some(uids) if !uids.is_empty() => {
                OwnerState::Pods(u32::try_from(uids.len()).unwrap_or(u32::MAX))
            }
            _ => match self.gone.get(key).copied().or(self.since) {
                Some(since) => OwnerState::Gone { since },
                None => OwnerState::Unknown,
            },
        }
    }
}

/// A pod's key and uid, when it carries the label.
fn identify(pod: &Pod, label: &str) -> Option<(Key, String)> {
    let meta = &pod.metadata;
    let value = meta.labels.as_ref()?.get(label)?;
    let key = (meta.namespace.clone()?, value.clone());
    let uid = meta.uid.clone().or_else(|| meta.name.clone())?;
    Some((key, uid))
}

/// Owner tracking by a watch of the pods that carry `label`.
pub struct KubeOwners {
    client: kube::Client,
    label: String,
    tracked: Mutex<Tracked>,
    clock: SharedClock,
}

impl std::fmt::Debug for KubeOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeOwners")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl KubeOwners {
    /// Starts tracking pods that carry `label` (the bundle label, [`BUNDLE_LABEL`] in the
    /// server). The watch runs until the returned task is aborted.
    ///
    /// [`BUNDLE_LABEL`]: sparkstage_api::bundles::BUNDLE_LABEL
    pub fn start(
        client: kube::Client,
        label: &str,
        clock: SharedClock,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let owners = Arc::new(Self {
            client,
            label: label.to_owned(),
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
            let config = watcher::Config::default().labels(&self.label);
            let mut events = std::pin::pin!(watcher(api, config));
            let failure = loop {
                match events.next().await {
                    Some(Ok(event)) => {
                        let synced = matches!(event, watcher::Event::InitDone);
                        self.tracked().apply(event, &self.label, self.clock.now());
                        if synced {
                            tracing::info!(label = %self.label, "owner tracking sees the cluster's pods");
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
        let (Some(namespace), Some(value)) = (&owner.namespace, owner.labels.get(&self.label))
        else {
            return OwnerState::Unknown;
        };
        self.tracked().state(&(namespace.clone(), value.clone()))
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
