//! A single-active lease built only from create-only writes of numbered objects:
//! `leases/{name}/{epoch:020}` holds `{holder, duration_ms}`. The holder of the newest epoch
//! holds the lease. To renew, the holder writes the next epoch itself; to take over, another
//! instance waits one full `duration` (measured on its own monotonic clock from when it first saw
//! that epoch, so clock skew between machines does not matter) and then writes the next epoch.
//! Exactly one writer of an epoch wins; a holder that finds a newer epoch by someone else is
//! fenced and stops.
//!
//! Used for the single active compactor (`leases/compactor/`) and for each journal shard's
//! committer (`leases/committer-{shard}/`, whose holder string is the address other gateways
//! send their commits to: see `docs/ARCHITECTURE.md`). The lease only decides who *should*
//! act; the correctness of what is written never depends on it (compactor outputs are
//! deterministic and create-only, journal entries are create-only).

use crate::keys;
use crate::store::{self, Created, DynStore};
use crate::Result;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct LeaseRecord {
    format: u32,
    holder: String,
    duration_ms: u64,
}

pub struct Lease {
    store: DynStore,
    name: String,
    holder: String,
    duration: Duration,
    /// Epoch we hold and when we wrote it.
    held: Option<(u64, Instant)>,
    /// Someone else's epoch and when we first saw it.
    observed: Option<(u64, Instant)>,
    /// The holder string of `observed` (`None` if its record was unreadable).
    observed_holder: Option<String>,
}

impl Lease {
    pub fn new(store: DynStore, name: &str, holder: String, duration: Duration) -> Self {
        Self {
            store,
            name: name.to_string(),
            holder,
            duration,
            held: None,
            observed: None,
            observed_holder: None,
        }
    }

    /// The lease's name (its folder under `leases/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who holds the newest epoch by someone else, as last seen by [`acquire`](Self::acquire)
    /// (which answered `false`); `None` while we hold it or before the first look.
    pub fn other_holder(&self) -> Option<&str> {
        match self.held {
            Some(_) => None,
            None => self.observed_holder.as_deref(),
        }
    }

    /// The epoch held, if the lease is held with a safety margin left (a third of its duration).
    pub fn epoch(&self) -> Option<u64> {
        self.held
            .filter(|(_, at)| at.elapsed() < self.duration * 2 / 3)
            .map(|(e, _)| e)
    }

    /// The newest epoch we wrote, whether or not it is still held with margin (`None` once
    /// another instance is seen to hold a newer one). Epochs are dense: if two looks at this
    /// differ by at most one, nobody else held the lease in between.
    pub fn last_epoch(&self) -> Option<u64> {
        self.held.map(|(e, _)| e)
    }

    /// Hold the lease: renew it if ours, take it if free or expired. `Ok(false)` means another
    /// instance holds it (wait and try again) or we were fenced.
    pub async fn acquire(&mut self) -> Result<bool> {
        if let Some((_, at)) = self.held {
            if at.elapsed() < self.duration / 3 {
                return Ok(true); // nobody can take it before a full duration has passed
            }
        }
        let dir = keys::lease_dir(&self.name);
        let names = store::list_names(&*self.store, &dir, None).await?;
        let latest = names.iter().rev().find_map(|n| keys::parse_seq(n));
        if let Some(epoch) = latest {
            let ours = self.held.is_some_and(|(e, _)| e == epoch);
            if !ours {
                self.held = None;
                let record =
                    match store::get_opt(&*self.store, &keys::lease(&self.name, epoch)).await? {
                        Some(b) => serde_json::from_slice::<LeaseRecord>(&b).ok(),
                        None => None,
                    };
                let duration = record
                    .as_ref()
                    .map_or(self.duration, |r| Duration::from_millis(r.duration_ms));
                self.observed_holder = record.map(|r| r.holder).filter(|h| !h.is_empty());
                match self.observed {
                    Some((e, at)) if e == epoch => {
                        if at.elapsed() < duration {
                            return Ok(false);
                        }
                    }
                    _ => {
                        self.observed = Some((epoch, Instant::now()));
                        return Ok(false);
                    }
                }
            }
        }
        let next = latest.map_or(1, |e| e + 1);
        let record = LeaseRecord {
            format: 1,
            holder: self.holder.clone(),
            duration_ms: self.duration.as_millis() as u64,
        };
        let bytes = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let started = Instant::now();
        match store::put_create(&*self.store, &keys::lease(&self.name, next), bytes).await? {
            Created::Yes => {
                self.held = Some((next, started));
                self.observed = None;
                self.observed_holder = None;
                // Old epochs are history; keep a few for debugging.
                for old in names
                    .iter()
                    .filter_map(|n| keys::parse_seq(n))
                    .filter(|e| *e + 8 < next)
                {
                    store::delete(&*self.store, &keys::lease(&self.name, old)).await?;
                }
                Ok(true)
            }
            Created::AlreadyExists => {
                self.held = None;
                Ok(false)
            }
        }
    }

    /// Give the lease up on a graceful stop: write the next epoch with no holder and a zero
    /// duration, so a successor takes over on its next look instead of waiting a full
    /// duration. Does nothing unless we hold the newest epoch; losing the race to a newer
    /// epoch is fine (someone else holds it already).
    pub async fn release(&mut self) -> Result<()> {
        let Some((epoch, _)) = self.held.take() else {
            return Ok(());
        };
        let record = LeaseRecord {
            format: 1,
            holder: String::new(),
            duration_ms: 0,
        };
        let bytes = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        store::put_create(&*self.store, &keys::lease(&self.name, epoch + 1), bytes).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_released_lease_is_taken_without_waiting_out_its_duration() {
        let store: DynStore = Arc::new(object_store::memory::InMemory::new());
        let hour = Duration::from_secs(3600);
        let mut a = Lease::new(store.clone(), "t", "a".into(), hour);
        let mut b = Lease::new(store.clone(), "t", "b".into(), hour);
        assert!(a.acquire().await.unwrap());
        // Held for an hour: b only observes it.
        assert!(!b.acquire().await.unwrap());
        assert!(!b.acquire().await.unwrap());
        assert_eq!(b.other_holder(), Some("a"));
        a.release().await.unwrap();
        assert_eq!(a.epoch(), None);
        // The release record has no holder and no duration: the first look sees it, the
        // second takes the lease.
        assert!(!b.acquire().await.unwrap());
        assert_eq!(b.other_holder(), None);
        assert!(b.acquire().await.unwrap());
        assert_eq!(b.epoch(), Some(3));
        // a, fenced by b's epoch, does not get it back.
        assert!(!a.acquire().await.unwrap());
        // Releasing what one does not hold writes nothing.
        a.release().await.unwrap();
        assert!(b.acquire().await.unwrap());
        assert_eq!(b.epoch(), Some(3));
    }
}
