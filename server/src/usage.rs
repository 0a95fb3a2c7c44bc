//! Bytes of blobs in the store, and the `--max-storage` cap.
//!
//! The count is taken by listing the blobs once at start (in the background; uploads that need
//! the cap wait for it), then kept without listing: an upload reserves its bytes before it writes
//! anything (its declared size, or chunk by chunk when it declares none) and gives back what it
//! did not store; garbage collection subtracts what it deletes, and its own listing of every
//! blob sets the count again, so drift does not accumulate. With several replicas on one bucket
//! each counts what it writes itself plus what the last listing saw: the cap can be passed by
//! what the other replicas stored since their last garbage collection (at most
//! `--gc-interval` of uploads).

use std::sync::{Arc, Mutex};

use sparkstage_api::size::format_size;

use crate::error::ApiError;

/// Stored bytes and bytes reserved by uploads in flight, under one lock (a cap check reads both).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    stored: u64,
    reserved: u64,
}

#[derive(Debug)]
pub struct Usage {
    counts: Mutex<Counts>,
    cap: Option<u64>,
    counted: tokio::sync::watch::Sender<bool>,
}

impl Usage {
    pub fn new(cap: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(Counts::default()),
            cap,
            counted: tokio::sync::watch::Sender::new(false),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn cap(&self) -> Option<u64> {
        self.cap
    }

    /// Bytes in use as far as this replica knows, uploads in flight included (0 until the first
    /// count).
    pub fn used(&self) -> u64 {
        let counts = *self.counts();
        counts.stored.saturating_add(counts.reserved)
    }

    /// Whether the first count is done.
    pub fn is_counted(&self) -> bool {
        *self.counted.borrow()
    }

    /// Sets the stored bytes from a listing of every blob. Uploads in flight keep their
    /// reservations; one that completed while the listing ran may be counted twice until the next
    /// count (the cap errs on the side of refusing).
    pub fn set_counted(&self, listed: u64) {
        self.counts().stored = listed;
        self.counted.send_replace(true);
    }

    /// Bytes that left the store.
    pub fn freed(&self, bytes: u64) {
        let mut counts = self.counts();
        counts.stored = counts.stored.saturating_sub(bytes);
    }

    /// Takes `bytes` under the cap for an upload, or answers 507 `storage_full` naming the cap
    /// and the use. The reservation gives its bytes back when dropped, unless kept.
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, ApiError> {
        let mut reservation = Reservation {
            usage: Arc::clone(self),
            bytes: 0,
        };
        reservation.grow(bytes).await?;
        Ok(reservation)
    }

    async fn wait_counted(&self) {
        let mut counted = self.counted.subscribe();
        let _ = counted.wait_for(|c| *c).await;
    }
}

/// Bytes an upload holds under the cap.
#[derive(Debug)]
pub struct Reservation {
    usage: Arc<Usage>,
    bytes: u64,
}

impl Reservation {
    /// Takes `more` bytes, or answers 507 (keeping what it held).
    pub async fn grow(&mut self, more: u64) -> Result<(), ApiError> {
        if self.usage.cap.is_some() && !self.usage.is_counted() {
            self.usage.wait_counted().await;
        }
        let mut counts = self.usage.counts();
        let used = counts.stored.saturating_add(counts.reserved);
        if let Some(cap) = self.usage.cap
            && used.checked_add(more).is_none_or(|total| total > cap)
        {
            return Err(ApiError::StorageFull(format!(
                "storing {} more would pass this server's storage cap of {} ({} in use, \
                 --max-storage); nothing was stored: delete bundles or raise the cap",
                format_size(more),
                format_size(cap),
                format_size(used.saturating_sub(self.bytes)),
            )));
        }
        counts.reserved = counts.reserved.saturating_add(more);
        self.bytes += more;
        Ok(())
    }

    /// The bytes were stored: they count as stored now.
    pub fn keep(mut self) {
        let mut counts = self.usage.counts();
        counts.reserved = counts.reserved.saturating_sub(self.bytes);
        counts.stored = counts.stored.saturating_add(self.bytes);
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut counts = self.usage.counts();
            counts.reserved = counts.reserved.saturating_sub(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_stay_under_the_cap_and_give_back_what_they_did_not_keep() {
        let usage = Usage::new(Some(100));
        usage.set_counted(40);
        let a = usage.reserve(50).await;
        assert!(a.is_ok());
        let b = usage.reserve(20).await;
        let Err(ApiError::StorageFull(message)) = &b else {
            panic!("{b:?}");
        };
        assert!(
            message.contains("100 B") && message.contains("90 B"),
            "{message}"
        );
        drop(a);
        assert_eq!(usage.used(), 40);
        let mut c = usage.reserve(30).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.grow(30).await.is_ok());
        assert!(c.grow(1).await.is_err());
        c.keep();
        assert_eq!(usage.used(), 100);
        usage.freed(500);
        assert_eq!(usage.used(), 0);
    }

    #[tokio::test]
    async fn a_count_keeps_the_uploads_in_flight() {
        let usage = Usage::new(Some(100));
        usage.set_counted(10);
        let in_flight = usage.reserve(50).await.unwrap_or_else(|e| panic!("{e}"));
        // A collection lists 30 stored bytes meanwhile: the 50 in flight still count.
        usage.set_counted(30);
        assert_eq!(usage.used(), 80);
        assert!(usage.reserve(21).await.is_err());
        in_flight.keep();
        assert_eq!(usage.used(), 80);
        usage.set_counted(80);
        assert_eq!(usage.used(), 80);
    }

    #[tokio::test]
    async fn without_a_cap_nothing_waits_for_the_count() {
        let usage = Usage::new(None);
        let r = usage.reserve(1 << 40).await;
        assert!(r.is_ok());
        assert_eq!(usage.used(), 1 << 40);
    }
}
