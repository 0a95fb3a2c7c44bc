//! Fetch leases: one replica fetches a source from its origin while the others on the bucket
//! wait for its record, so that a source missed by several replicas at the same moment is
//! still fetched once (issue 13's single flight across replicas; within a replica, the
//! in-flight map of `crate::sources` does it).
//!
//! A lease is `source-leases/<key>.json` (`{holder, taken_at, expires_at}`), created only if
//! absent (`PutMode::Create`), renewed by its holder every [`RENEW`] while the fetch runs and
//! deleted when it ends. Another replica that finds a live lease waits until a record written
//! after the lease was taken appears (the holder's fetch succeeded), or the lease is gone (it
//! failed: the waiter tries to take the lease itself). A lease not renewed for [`LEASE`] plus
//! [`CLOCK_SKEW`] belongs to a replica that died: it is taken over. Two replicas that take over
//! the same dead lease at the same moment may both fetch; that costs a fetch, never a wrong
//! answer, since both store the same verified bytes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;

/// Where leases live (not under `sources/`: the records' readers read every file there).
pub const LEASES_PREFIX: &str = "source-leases";
/// How long a lease lives without being renewed.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often its holder renews it.
pub const RENEW: Duration = Duration::from_secs(20);
/// How far replicas' clocks may disagree.
const CLOCK_SKEW: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseFile {
    /// Random, per lease: who holds it.
    pub holder: String,
    pub taken_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

fn path(key: &str) -> Path {
    Path::from(format!("{LEASES_PREFIX}/{key}.json"))
}

fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What trying to take the lease of a source found.
pub enum Taken {
    /// This replica holds it: fetch, [`Leases::renew`] while fetching, then [`Leases::release`].
    Held(LeaseFile),
    /// Another replica holds it, live.
    Elsewhere(LeaseFile),
    /// The store could not be asked: fetch without a lease.
    Unavailable(String),
}

/// The leases of one store.
pub struct Leases<'a> {
    pub store: &'a dyn ObjectStore,
    pub clock: &'a SharedClock,
}

impl Leases<'_> {
    fn file(&self, taken_at: DateTime<Utc>, holder: String) -> LeaseFile {
        LeaseFile {
            holder,
            taken_at,
            expires_at: self.clock.now() + span(LEASE),
        }
    }

    /// Takes the lease of `key` if it is free or dead.
    pub async fn take(&self, key: &str) -> Taken {
        for _ in 0..3 {
            let lease = self.file(self.clock.now(), hex::encode(rand::random::<[u8; 16]>()));
            let Ok(json) = serde_json::to_vec(&lease) else {
                return Taken::Unavailable("cannot write a lease".to_owned());
            };
            let options = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&path(key), PutPayload::from(json), options)
                .await
            {
                Ok(_) => return Taken::Held(lease),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Taken::Unavailable(e.to_string()),
            }
            match self.read(key).await {
                Ok(Some(found)) if self.is_live(&found) => return Taken::Elsewhere(found),
                // Dead (or unreadable): taken over.
                Ok(Some(_)) => {
                    if let Err(e) = crate::storage::delete_quietly(self.store, &path(key)).await {
                        return Taken::Unavailable(e.to_string());
                    }
                }
                // Released meanwhile: try again.
                Ok(None) => {}
                Err(e) => return Taken::Unavailable(e),
            }
        }
        Taken::Unavailable("the lease changed hands three times while taking it".to_owned())
    }

    /// The lease of `key`, if there is one.
    pub async fn read(&self, key: &str) -> Result<Option<LeaseFile>, String> {
        match self.store.get(&path(key)).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(|e| e.to_string())?;
                // A corrupt lease is a dead one.
                Ok(Some(serde_json::from_slice(&bytes).unwrap_or(LeaseFile {
                    holder: String::new(),
                    taken_at: DateTime::<Utc>::MIN_UTC,
                    expires_at: DateTime::<Utc>::MIN_UTC,
                })))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether `lease` is still renewed by its holder, by this replica's clock.
    pub fn is_live(&self, lease: &LeaseFile) -> bool {
        lease
            .expires_at
            .checked_add_signed(span(CLOCK_SKEW))
            .is_some_and(|until| self.clock.now() < until)
    }

    /// Extends the lease this replica holds.
    pub async fn renew(&self, key: &str, lease: &LeaseFile) {
        let renewed = self.file(lease.taken_at, lease.holder.clone());
        let Ok(json) = serde_json::to_vec(&renewed) else {
            return;
        };
        if let Err(e) = self.store.put(&path(key), PutPayload::from(json)).await {
            tracing::warn!(error = %e, "a source's fetch lease could not be renewed");
        }
    }

    /// Gives the lease back, unless another replica took it over meanwhile.
    pub async fn release(&self, key: &str, lease: &LeaseFile) {
        if let Ok(Some(found)) = self.read(key).await
            && found.holder == lease.holder
        {
            let _ = crate::storage::delete_quietly(self.store, &path(key)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_dead_lease_is_taken_over() {
        let store = object_store::memory::InMemory::new();
        let manual = ManualClock::new(Utc::now());
        let clock: SharedClock = Arc::new(manual.clone());
        let leases = Leases {
            store: &store,
            clock: &clock,
        };
        let Taken::Held(first) = leases.take("k").await else {
            panic!("a free lease is taken");
        };
        let Taken::Elsewhere(seen) = leases.take("k").await else {
            panic!("a held lease is not taken twice");
        };
        assert_eq!(seen.holder, first.holder);
        // Renewed, it stays live past its first expiry.
        manual.advance(Duration::from_secs(50));
        leases.renew("k", &first).await;
        manual.advance(Duration::from_secs(50));
        assert!(matches!(leases.take("k").await, Taken::Elsewhere(_)));
        // Not renewed for a lease and the clock skew: dead, taken over.
        manual.advance(LEASE + CLOCK_SKEW);
        let Taken::Held(second) = leases.take("k").await else {
            panic!("a dead lease is taken over");
        };
        assert_ne!(second.holder, first.holder);
        // The first holder, back late, does not release its successor's lease.
        leases.release("k", &first).await;
        assert!(matches!(leases.take("k").await, Taken::Elsewhere(_)));
        leases.release("k", &second).await;
        assert!(matches!(leases.take("k").await, Taken::Held(_)));
    }
}
