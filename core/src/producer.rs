//! Idempotent producers' registry: `POST /v1/producers` mints an id (epoch 0) or bumps the
//! epoch of an existing one, as create-only objects `producers/{id}/{epoch:020}` (the key says
//! everything; the small JSON body is for people). The sequence state itself lives in the
//! journal shards' head state (`crate::head`), per topic.
//!
//! Fencing: a produce with an epoch older than the newest registered is refused
//! ([`Producers::check`], newest epoch cached for `ttl`, so a bump fences within that time on
//! every gateway), and once the new epoch has committed on a topic the head refuses the old
//! one there atomically with the commit.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ids::{new_ulid, ProducerId};
use crate::keys;
use crate::store::{self, Created, DynStore};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PRODUCER_FORMAT: u32 = 1;

/// The body of a producer epoch object.
#[derive(serde::Serialize)]
struct EpochDoc {
    format: u32,
    producer_id: String,
    epoch: u32,
    created_ms: i64,
}

pub struct Producers {
    store: DynStore,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    /// Newest epoch per producer, and when it was read.
    cache: Mutex<HashMap<ProducerId, (u32, Instant)>>,
}

impl Producers {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            store,
            clock,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The newest epoch registered, from the bucket; `None` if the producer does not exist.
    async fn load_latest(&self, id: ProducerId) -> Result<Option<u32>> {
        let names = store::list_names(&*self.store, &keys::producer_dir(id), None).await?;
        let latest = names
            .iter()
            .filter_map(|n| keys::parse_seq(n))
            .filter_map(|e| u32::try_from(e).ok())
            .max();
        if let Some(e) = latest {
            self.remember(id, e);
        }
        Ok(latest)
    }

    fn remember(&self, id: ProducerId, epoch: u32) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let e = c.entry(id).or_insert((epoch, Instant::now()));
        *e = (e.0.max(epoch), Instant::now());
    }

    async fn write(&self, id: ProducerId, epoch: u32) -> Result<Created> {
        let doc = EpochDoc {
            format: PRODUCER_FORMAT,
            producer_id: id.to_string(),
            epoch,
            created_ms: self.clock.now_ms(),
        };
        let body = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        let created =
            store::put_create(&*self.store, &keys::producer_epoch(id, epoch), body).await?;
        if created == Created::Yes {
            self.remember(id, epoch);
        }
        Ok(created)
    }

    /// A new producer, at epoch 0.
    pub async fn create(&self) -> Result<(ProducerId, u32)> {
        let id = ProducerId::from_ulid(new_ulid(self.clock.now_ms()));
        match self.write(id, 0).await? {
            Created::Yes => Ok((id, 0)),
            Created::AlreadyExists => Err(Error::Conflict(format!(
                "producer {id} exists already; retry"
            ))),
        }
    }

    /// Bump an existing producer's epoch: the old epochs are fenced, sequences restart at 0.
    pub async fn bump(&self, id: ProducerId) -> Result<u32> {
        for _ in 0..8 {
            let latest = self
                .load_latest(id)
                .await?
                .ok_or_else(|| Error::ProducerNotFound(id.to_string()))?;
            let next = latest
                .checked_add(1)
                .ok_or_else(|| Error::Invalid(format!("producer {id} has no epochs left")))?;
            if self.write(id, next).await? == Created::Yes {
                return Ok(next);
            }
        }
        Err(Error::Conflict(format!(
            "producer {id} is being bumped concurrently; retry"
        )))
    }

    /// Whether `epoch` is the producer's newest: `ProducerNotFound` for an unknown producer or
    /// an epoch never issued, `ProducerFenced` for an older one.
    pub async fn check(&self, id: ProducerId, epoch: u32) -> Result<()> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied();
        let latest = match cached {
            Some((e, at)) if at.elapsed() < self.ttl && epoch <= e => e,
            _ => self
                .load_latest(id)
                .await?
                .ok_or_else(|| Error::ProducerNotFound(id.to_string()))?,
        };
        if epoch < latest {
            return Err(Error::ProducerFenced {
                epoch,
                current: latest,
            });
        }
        if epoch > latest {
            return Err(Error::ProducerNotFound(format!("{id} epoch {epoch}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    #[tokio::test]
    async fn create_bump_and_check() {
        let s = store::open("memory://", &Default::default()).unwrap();
        let a = Producers::new(s.clone(), clock::system(), Duration::from_secs(60));
        let b = Producers::new(s, clock::system(), Duration::ZERO);
        let (id, epoch) = a.create().await.unwrap();
        assert_eq!(epoch, 0);
        b.check(id, 0).await.unwrap();
        assert_eq!(b.bump(id).await.unwrap(), 1);
        assert_eq!(a.bump(id).await.unwrap(), 2);
        // `a` wrote epoch 2 itself; `b` reads the bucket every time.
        for p in [&a, &b] {
            assert!(matches!(
                p.check(id, 1).await,
                Err(Error::ProducerFenced {
                    epoch: 1,
                    current: 2
                })
            ));
            p.check(id, 2).await.unwrap();
            assert!(matches!(
                p.check(id, 3).await,
                Err(Error::ProducerNotFound(_))
            ));
        }
        let unknown = ProducerId([9; 16]);
        assert!(matches!(
            a.check(unknown, 0).await,
            Err(Error::ProducerNotFound(_))
        ));
        assert!(matches!(
            a.bump(unknown).await,
            Err(Error::ProducerNotFound(_))
        ));
    }
}
