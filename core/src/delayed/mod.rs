//! Delayed records: a produced record with `delay_ms` / `deliver_at_ms` is kept out of its
//! topic, in the bucket, until it is due; then the mover appends it through the normal log
//! path and it gets its offset (so no read, group or queue can see it earlier).
//!
//! # Objects
//! - `delayed/b/{hour:08}/{second:012}/{topic}/{due_ms:013}-{ulid}`: the records of one produce
//!   request that fall due in one 100 ms slot ([`crate::format::delayed`]), written create-only
//!   and acked only once the PUT answered (durable). `due_ms` is the latest `deliver_at_ms` of
//!   its records, but never before the write started; `second` and `hour` are `due_ms / 1000`
//!   and `/ 3_600_000`. So the time bucket of an object is never in the past when its PUT
//!   starts, and a LIST of one second's prefix finds what falls due in it.
//! - `delayed/state/`: a state log ([`state`]) ordering deliveries and cancels.
//!
//! A record's public id is `{due_ms}-{ulid}-{index}`: it names its object, so a cancel needs
//! no index of any kind.
//!
//! # Who moves due records
//! The [`mover::Mover`], single-active under the lease `leases/delayed-mover/`, runs wherever a
//! compactor runs (`sluice dev`, `sluice gateway --with-compactor`, `sluice compactor`). Each
//! tick it LISTs only the current second's prefix (and, once a second, the two before it), so
//! its idle cost is a few LISTs a second whatever the number pending; objects due are taken in a
//! state-log entry, appended with the Idempotency-Key `sluice-delayed/{ulid}` (a redo after a
//! crash is answered from the dedup window, never appended twice), deleted, and marked done.

pub mod mover;
pub mod state;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::format::delayed::{DelayedItem, DelayedObject};
use crate::format::delayed_key::{DelayedMarker, PlannedObject};
use crate::format::record::Record;
use crate::ids::{new_ulid, TopicId};
use crate::statelog::{StateLog, StateLogConfig};
use crate::store::{self, Created, DynStore};
use crate::topic::TopicConfig;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use state::{plan_cancel, CancelPlan, DelayedState};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use ulid::Ulid;

/// The longest delay accepted: 365 days.
pub const MAX_DELAY_MS: i64 = 365 * 24 * 3_600_000;
/// Records of one request due within one slot share an object.
pub const SLOT_MS: i64 = 100;
/// Prefix of every delayed object.
pub const BUCKETS: &str = "delayed/b";
/// The state log's prefix.
pub const STATE_PREFIX: &str = "delayed/state";

/// When a record asks to be delivered: `now + delay_ms`, or `deliver_at_ms` (at most one of
/// them). `None` for a record that is not delayed. Negative delays, negative times and times
/// more than [`MAX_DELAY_MS`] ahead are refused; a time in the past means "at once".
pub fn deliver_at(
    delay_ms: Option<i64>,
    deliver_at_ms: Option<i64>,
    now_ms: i64,
) -> std::result::Result<Option<i64>, String> {
    match (delay_ms, deliver_at_ms) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err("give delay_ms or deliver_at_ms, not both".into()),
        (Some(d), None) if d < 0 => Err(format!("delay_ms {d} is negative")),
        (Some(d), None) if d > MAX_DELAY_MS => Err(format!(
            "delay_ms {d} is more than 365 days ({MAX_DELAY_MS} ms)"
        )),
        (Some(d), None) => Ok(Some(now_ms + d)),
        (None, Some(t)) if t < 0 => Err(format!("deliver_at_ms {t} is negative")),
        (None, Some(t)) if t > now_ms + MAX_DELAY_MS => {
            Err(format!("deliver_at_ms {t} is more than 365 days ahead"))
        }
        (None, Some(t)) => Ok(Some(t)),
    }
}

/// Where one delayed object lives.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub due_ms: i64,
    pub topic: String,
    pub ulid: Ulid,
}

impl ObjectKey {
    pub fn second(&self) -> i64 {
        self.due_ms.div_euclid(1000)
    }
    pub fn path(&self) -> Path {
        Path::from(format!(
            "{}/{}/{}",
            bucket_prefix(self.second()),
            self.topic,
            self.name()
        ))
    }
    fn name(&self) -> String {
        format!("{:013}-{}", self.due_ms, self.ulid)
    }
    /// The public id of record `index` of this object.
    pub fn record_id(&self, index: u32) -> String {
        format!("{}-{}-{index}", self.due_ms, self.ulid)
    }
    /// Parse an object path as [`path`](Self::path) builds it.
    pub fn parse(p: &Path) -> Option<Self> {
        let parts: Vec<_> = p.parts().collect();
        let [d, b, hour, second, topic, name] = parts.as_slice() else {
            return None;
        };
        if d.as_ref() != "delayed" || b.as_ref() != "b" {
            return None;
        }
        let (due, ulid) = name.as_ref().split_once('-')?;
        let key = ObjectKey {
            due_ms: digits(due, 13)?,
            topic: topic.as_ref().to_string(),
            ulid: Ulid::from_string(ulid).ok()?,
        };
        let ok = key.second() == digits(second.as_ref(), 12)?
            && key.second().div_euclid(3600) == digits(hour.as_ref(), 8)?
            && key.path() == *p;
        ok.then_some(key)
    }
    /// Parse a public record id of `topic`: `{due_ms}-{ulid}-{index}`.
    pub fn parse_record_id(topic: &str, id: &str) -> Option<(Self, u32)> {
        let mut it = id.split('-');
        let (due, ulid, index) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || ulid.len() != 26 {
            return None;
        }
        let key = ObjectKey {
            due_ms: digits(due, 15)?,
            topic: topic.to_string(),
            ulid: Ulid::from_string(ulid).ok()?,
        };
        let index = u32::try_from(digits(index, 10)?).ok()?;
        (key.record_id(index) == id).then_some((key, index))
    }
}

fn digits(s: &str, max: usize) -> Option<i64> {
    (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `delayed/b/{hour}/{second}`: what falls due in one second.
pub fn bucket_prefix(second: i64) -> String {
    format!("{BUCKETS}/{:08}/{second:012}", second.div_euclid(3600))
}

/// Group a request's delayed records (`(request index, item)`) into objects: one per 100 ms slot
/// of `max(deliver_at, now)`; an object's due time is the latest of its records, never before
/// `now`. Pure; the answer lists `(due_ms, request indexes)` soonest first.
pub fn plan_objects(deliver_at: &[(usize, i64)], now_ms: i64) -> Vec<(i64, Vec<usize>)> {
    let mut slots: BTreeMap<i64, (i64, Vec<usize>)> = BTreeMap::new();
    for &(i, t) in deliver_at {
        let eff = t.max(now_ms);
        let slot = slots
            .entry(eff.div_euclid(SLOT_MS))
            .or_insert((eff, vec![]));
        slot.0 = slot.0.max(eff);
        slot.1.push(i);
    }
    slots.into_values().collect()
}

/// Prefix of the idempotency markers of delayed records.
pub const MARKERS: &str = "delayed/k";
/// How long a marker answers retries: the dedup window of `Idempotency-Key`. It must stay
/// below [`state::FORGET_AFTER_MS`]: a retry may write again an object that was delivered and
/// deleted since, and only the done set, which remembers it that long, keeps it from a second
/// delivery.
pub const MARKER_WINDOW_MS: i64 = 10 * 60_000;
const _: () = assert!(MARKER_WINDOW_MS < state::FORGET_AFTER_MS);

/// `delayed/k/{topic}/{hex SHA-256 of the Idempotency-Key}`.
pub fn marker_path(topic: &str, key: &[u8]) -> Path {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
    let hex = crate::format::hex::of(digest.as_ref());
    Path::from(format!("{MARKERS}/{topic}/{hex}"))
}

/// A request's `Idempotency-Key` and the [`Fingerprint`] of its delayed records.
#[derive(Clone, Copy, Debug)]
pub struct Idempotent<'a> {
    pub key: &'a [u8],
    pub fingerprint: [u8; 32],
}

/// SHA-256 of a request's delayed records as the producer gave them (place in the request,
/// delay as asked, partition, key, value, timestamp, headers), so that a retry sending a
/// relative `delay_ms` again matches while one with other records does not.
pub struct Fingerprint(aws_lc_rs::digest::Context);

impl Default for Fingerprint {
    fn default() -> Self {
        Self(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256))
    }
}

impl Fingerprint {
    pub fn add(
        &mut self,
        index: usize,
        delay_ms: Option<i64>,
        deliver_at_ms: Option<i64>,
        partition: Option<u32>,
        record: &Record,
    ) {
        let mut b = bytes::BytesMut::with_capacity(40 + record.encoded_len());
        bytes::BufMut::put_u64_le(&mut b, index as u64);
        for v in [delay_ms, deliver_at_ms, partition.map(i64::from)] {
            bytes::BufMut::put_u8(&mut b, v.is_some() as u8);
            bytes::BufMut::put_i64_le(&mut b, v.unwrap_or(0));
        }
        record.encode(&mut b);
        self.0.update(&b);
    }

    pub fn finish(self) -> [u8; 32] {
        let mut out = [0; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// What [`Delayed::write`] answers: each record's id and due time in the order given, and
/// whether a retry was answered from its marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub ids: Vec<String>,
    pub deliver_at_ms: Vec<i64>,
    pub duplicate: bool,
}

/// The objects of `items` (slots of [`plan_objects`], a fresh ULID each) as a marker. Pure but
/// for the ULIDs' randomness.
pub fn plan_marker(
    topic_id: [u8; 16],
    fingerprint: [u8; 32],
    items: &[DelayedItem],
    now_ms: i64,
) -> DelayedMarker {
    let times: Vec<(usize, i64)> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (i, it.deliver_at_ms))
        .collect();
    DelayedMarker {
        topic_id,
        created_ms: now_ms,
        fingerprint,
        deliver_at_ms: items.iter().map(|i| i.deliver_at_ms).collect(),
        objects: plan_objects(&times, now_ms)
            .into_iter()
            .map(|(due_ms, members)| PlannedObject {
                due_ms,
                ulid: new_ulid(now_ms).to_bytes(),
                members: members.into_iter().map(|i| i as u32).collect(),
            })
            .collect(),
    }
}

/// One pending record as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub deliver_at_ms: i64,
    pub partition: Option<u32>,
    pub record: Record,
}

/// The delayed records of a deployment: write, list, cancel. Shared by a gateway's handlers
/// and the mover; the state log is opened on first use.
pub struct Delayed {
    store: DynStore,
    clock: Arc<dyn Clock>,
    writer: [u8; 16],
    state: tokio::sync::OnceCell<Arc<StateLog<DelayedState>>>,
}

impl Delayed {
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, writer: [u8; 16]) -> Arc<Self> {
        Arc::new(Self {
            store,
            clock,
            writer,
            state: tokio::sync::OnceCell::new(),
        })
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub async fn state(&self) -> Result<&Arc<StateLog<DelayedState>>> {
        self.state
            .get_or_try_init(|| async {
                StateLog::open(
                    self.store.clone(),
                    STATE_PREFIX,
                    self.clock.clone(),
                    StateLogConfig::default(),
                    self.writer,
                )
                .await
            })
            .await
    }

    /// Write delayed records of `topic` (in request order), one object per slot, every PUT
    /// answered before this returns. Answers each record's id and due time, in the order given.
    ///
    /// With `idempotent` (a request's `Idempotency-Key`): the plan is first written create-only
    /// as a marker ([`marker_path`]); a retry within [`MARKER_WINDOW_MS`] finds it, writes the
    /// same objects under the same names (create-only: what is there already counts) and gets
    /// the same answer, `duplicate` set. A retry with other records is
    /// [`Error::IdempotencyConflict`].
    pub async fn write(
        &self,
        topic: &TopicConfig,
        items: Vec<DelayedItem>,
        idempotent: Option<Idempotent<'_>>,
    ) -> Result<Written> {
        let topic_id = topic_id(topic)?;
        let Some(idem) = idempotent else {
            let marker = plan_marker(topic_id, [0; 32], &items, self.clock.now_ms());
            return self.write_planned(topic, &marker, items, None).await;
        };
        let path = marker_path(&topic.name, idem.key);
        for _ in 0..3 {
            let now = self.clock.now_ms();
            let fresh = plan_marker(topic_id, idem.fingerprint, &items, now);
            let marker = match store::put_create(&*self.store, &path, fresh.encode()).await? {
                Created::Yes => return self.write_planned(topic, &fresh, items, None).await,
                Created::AlreadyExists => {
                    let Some(bytes) = store::get_opt(&*self.store, &path).await? else {
                        continue; // collected meanwhile: plan again
                    };
                    DelayedMarker::decode(&bytes).map_err(|e| Error::corrupt(&path, e))?
                }
            };
            if marker.topic_id != topic_id || now - marker.created_ms > MARKER_WINDOW_MS {
                // Another incarnation's, or past the dedup window: a new request.
                store::delete(&*self.store, &path).await?;
                continue;
            }
            if marker.fingerprint != idem.fingerprint || marker.deliver_at_ms.len() != items.len() {
                return Err(Error::IdempotencyConflict);
            }
            // Objects the mover took or delivered since are not written again (it deleted
            // them); any other missing one was never written (the first try failed).
            let state = self.state().await?.read(Duration::ZERO).await?.state;
            let gone = |name: &str| state.taken.contains_key(name) || state.done.contains_key(name);
            return self.write_planned(topic, &marker, items, Some(&gone)).await;
        }
        Err(Error::Stale(format!(
            "the idempotency marker {path} changed under every try"
        )))
    }

    /// PUT the objects `marker` plans for `items` (create-only) and answer the ids it gives
    /// them. On a retry (`gone` given) what is there counts as written, and objects `gone` names
    /// (taken or delivered by the mover) are not written again.
    async fn write_planned(
        &self,
        topic: &TopicConfig,
        marker: &DelayedMarker,
        items: Vec<DelayedItem>,
        gone: Option<&(dyn Fn(&str) -> bool + Sync)>,
    ) -> Result<Written> {
        let retry = gone.is_some();
        let mut ids = vec![String::new(); items.len()];
        let mut items: Vec<Option<DelayedItem>> = items.into_iter().map(Some).collect();
        let mut puts = Vec::with_capacity(marker.objects.len());
        for planned in &marker.objects {
            let key = ObjectKey {
                due_ms: planned.due_ms,
                topic: topic.name.clone(),
                ulid: Ulid::from_bytes(planned.ulid),
            };
            let mut object = DelayedObject {
                topic_id: marker.topic_id,
                created_ms: marker.created_ms,
                items: Vec::with_capacity(planned.members.len()),
            };
            for (n, &i) in planned.members.iter().enumerate() {
                let i = i as usize;
                ids[i] = key.record_id(n as u32);
                let mut item = items[i]
                    .take()
                    .ok_or_else(|| Error::Internal(format!("record {i} planned twice")))?;
                item.deliver_at_ms = marker.deliver_at_ms[i];
                object.items.push(item);
            }
            let path = key.path();
            if !gone.is_some_and(|gone| gone(path.as_ref())) {
                puts.push((path, object.encode()));
            }
        }
        futures::stream::iter(puts)
            .map(|(path, bytes)| async move {
                match store::put_create(&*self.store, &path, bytes).await? {
                    Created::Yes => Ok(()),
                    // A retry's object the first try (or a concurrent retry) wrote: the same
                    // name, so the same records. (One the mover delivered between the state
                    // read and this PUT is written again, and deleted unsent by the mover: it
                    // is in its done set, kept longer than the window.)
                    Created::AlreadyExists if retry => Ok(()),
                    // A fresh ULID: never there before.
                    Created::AlreadyExists => Err(Error::Conflict(format!("{path} exists"))),
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(Written {
            ids,
            deliver_at_ms: marker.deliver_at_ms.clone(),
            duplicate: retry,
        })
    }

    /// Delete the idempotency markers last written more than [`MARKER_WINDOW_MS`] + 5 minutes
    /// ago (they answer no retry any more). One LIST, and a DELETE per old marker.
    pub async fn collect_markers(&self) -> Result<u64> {
        let old = self.clock.now_ms() - MARKER_WINDOW_MS - 5 * 60_000;
        let mut n = 0;
        for meta in store::list_under(&*self.store, &Path::from(MARKERS)).await? {
            if meta.last_modified.timestamp_millis() < old {
                store::delete(&*self.store, &meta.location).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// GET and decode one object; `None` if it is gone (delivered) or not of this incarnation.
    pub async fn read_object(
        &self,
        key: &ObjectKey,
        topic_id: Option<[u8; 16]>,
    ) -> Result<Option<DelayedObject>> {
        let path = key.path();
        let Some(bytes) = store::get_opt(&*self.store, &path).await? else {
            return Ok(None);
        };
        let object = DelayedObject::decode(&bytes).map_err(|e| Error::corrupt(&path, e))?;
        Ok(topic_id
            .is_none_or(|id| id == object.topic_id)
            .then_some(object))
    }

    /// Pending records of `topic`, soonest first (by due second, then by time), at most
    /// `limit`. Looks through at most `MAX_LIST_OBJECTS` objects.
    pub async fn list(&self, topic: &TopicConfig, limit: usize) -> Result<Vec<Pending>> {
        const MAX_LIST_OBJECTS: usize = 2000;
        let topic_id = topic_id(topic)?;
        let state = self
            .state()
            .await?
            .read(Duration::from_millis(100))
            .await?
            .state;
        let mut out = Vec::new();
        let mut objects = 0;
        let root = Path::from(BUCKETS);
        'scan: for hour in store::list_dirs(&*self.store, &root).await? {
            let hour_dir = root.clone().join(hour.as_str());
            for second in store::list_dirs(&*self.store, &hour_dir).await? {
                let dir = hour_dir
                    .clone()
                    .join(second.as_str())
                    .join(topic.name.as_str());
                for name in store::list_names(&*self.store, &dir, None).await? {
                    let Some(key) = ObjectKey::parse(&dir.clone().join(name.as_str())) else {
                        continue;
                    };
                    let object_name = key.path().to_string();
                    if state.taken.contains_key(&object_name)
                        || state.done.contains_key(&object_name)
                    {
                        continue;
                    }
                    objects += 1;
                    let Some(object) = self.read_object(&key, Some(topic_id)).await? else {
                        continue;
                    };
                    for (i, item) in object.items.into_iter().enumerate() {
                        if state.is_pending(&object_name, i as u32) {
                            out.push(Pending {
                                id: key.record_id(i as u32),
                                deliver_at_ms: item.deliver_at_ms,
                                partition: item.partition,
                                record: item.record,
                            });
                        }
                    }
                }
                // A second is read whole, so what is returned is the soonest.
                if out.len() >= limit || objects >= MAX_LIST_OBJECTS {
                    break 'scan;
                }
            }
        }
        out.sort_by(|a, b| (a.deliver_at_ms, &a.id).cmp(&(b.deliver_at_ms, &b.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Cancel a pending record of `topic`. [`Error::DelayedNotFound`] once it was taken for
    /// delivery, delivered, cancelled, or if it never existed.
    pub async fn cancel(&self, topic: &TopicConfig, id: &str) -> Result<()> {
        let not_found = || Error::DelayedNotFound(id.to_string());
        let (key, index) = ObjectKey::parse_record_id(&topic.name, id).ok_or_else(not_found)?;
        let state = self.state().await?;
        for _ in 0..3 {
            let seen = self.clock.now_ms();
            let object = self
                .read_object(&key, Some(topic_id(topic)?))
                .await?
                .ok_or_else(not_found)?;
            if index as usize >= object.items.len() {
                return Err(not_found());
            }
            let name = key.path().to_string();
            let c = state
                .propose(move |s, now| plan_cancel(s, &name, index, seen, now))
                .await?;
            match c.answer {
                CancelPlan::Cancelled => return Ok(()),
                CancelPlan::NotFound => return Err(not_found()),
                CancelPlan::Stale => continue,
            }
        }
        Err(Error::Stale(
            "the cancel could not be committed in time".into(),
        ))
    }
}

fn topic_id(topic: &TopicConfig) -> Result<[u8; 16]> {
    TopicId::parse(&topic.id)
        .map(|t| t.0)
        .ok_or_else(|| Error::Internal(format!("topic {} has a malformed id", topic.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_at_rules() {
        let now = 1_000_000;
        assert_eq!(deliver_at(None, None, now), Ok(None));
        assert_eq!(deliver_at(Some(5), None, now), Ok(Some(now + 5)));
        assert_eq!(deliver_at(Some(0), None, now), Ok(Some(now)));
        assert_eq!(
            deliver_at(Some(MAX_DELAY_MS), None, now),
            Ok(Some(now + MAX_DELAY_MS))
        );
        assert!(deliver_at(Some(MAX_DELAY_MS + 1), None, now).is_err());
        assert!(deliver_at(Some(-1), None, now).is_err());
        assert!(deliver_at(Some(1), Some(now), now).is_err());
        // The past delivers at once; it is kept as asked.
        assert_eq!(deliver_at(None, Some(3), now), Ok(Some(3)));
        assert!(deliver_at(None, Some(-3), now).is_err());
        assert!(deliver_at(None, Some(now + MAX_DELAY_MS + 1), now).is_err());
    }

    #[test]
    fn objects_group_by_slot_and_are_never_due_before_the_write() {
        let now = 10_050;
        let plan = plan_objects(
            &[(0, 20_010), (1, 5), (2, 20_090), (3, 20_100), (4, 9)],
            now,
        );
        assert_eq!(
            plan,
            vec![(now, vec![1, 4]), (20_090, vec![0, 2]), (20_100, vec![3])]
        );
    }

    #[test]
    fn keys_and_ids_round_trip_and_reject_garbage() {
        let key = ObjectKey {
            due_ms: 1_764_690_000_123,
            topic: "orders.eu".into(),
            ulid: Ulid::from_parts(1_764_690_000_000, 42),
        };
        let p = key.path();
        assert!(p
            .to_string()
            .starts_with("delayed/b/00490191/001764690000/orders.eu/1764690000123-"));
        assert_eq!(ObjectKey::parse(&p), Some(key.clone()));
        let id = key.record_id(7);
        assert_eq!(
            ObjectKey::parse_record_id("orders.eu", &id),
            Some((key.clone(), 7))
        );
        for bad in [
            "",
            "1-2-3",
            "x-01ARZ3NDEKTSV4RRFFQ69G5FAV-0",
            "1764690000123-01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "1764690000123-01ARZ3NDEKTSV4RRFFQ69G5FAV-0-1",
            "1764690000123-01ARZ3NDEKTSV4RRFFQ69G5FAV-01",
            "99999999999999999999-01ARZ3NDEKTSV4RRFFQ69G5FAV-0",
        ] {
            assert_eq!(ObjectKey::parse_record_id("t", bad), None, "{bad}");
        }
        assert_eq!(ObjectKey::parse(&Path::from("delayed/b/1/2/t/x")), None);
    }
}
