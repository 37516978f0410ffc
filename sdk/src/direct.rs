//! Reading a partition straight from the bucket, with no gateway in the data path: fan-out costs
//! object-store GETs, not gateway CPU. [`DirectReader`] opens the bucket (the same URLs as the
//! servers: `file:///dir`, `s3://bucket/prefix`); each [`DirectConsumer`] follows one partition.
//!
//! This is the gateway's own read path, not a second one: [`sluice_core::log::Log`] resolves
//! the start ([`Log::start_offset`]), reads ([`Log::read`]: the compactor's indexes, then the
//! journal tail) and waits for new commits ([`Log::wait_for`], polling the journal head).
//!
//! Read-ahead: while the caller handles one page, a consumer already reads the next ones
//! ([`DirectConsumer::set_read_ahead`], default [`DEFAULT_READ_AHEAD`] pages), each with
//! [`Log::read`] in a task of its own, so several pages' GETs are in flight at once. Pages are
//! planned `max_records` apart from the position and only below the high watermark last seen,
//! so a read ahead never asks past the end; a page that ended early (its byte bound) is
//! followed by a read of the gap, and whatever does not start at the position is dropped. At
//! most `read_ahead` pages of at most (about) `max_bytes` each are held ahead. A consumer with a
//! filter reads no page ahead (where a filtered page ends cannot be planned).

use crate::error::{Error, Result};
use sluice_core::clock::{self, Clock};
use sluice_core::filter::Filter;
use sluice_core::log::{Log, LogConfig, PartitionInfo, ReadBatch, ScanBudget, Start};
use sluice_core::store::{self, DynStore, StoreOptions};
use sluice_core::topic::TopicConfig;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Most records one [`DirectConsumer::poll`] returns (default), as a gateway answer.
pub const DEFAULT_MAX_RECORDS: usize = 1000;
/// Roughly the most record bytes one poll returns (default).
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;
/// Pages a consumer reads ahead of its position (default).
pub const DEFAULT_READ_AHEAD: usize = 2;

/// A reader of one bucket. Cheap to clone; consumers made from it share its view of the
/// journal (one GET of a shard's head serves all of them).
#[derive(Clone)]
pub struct DirectReader {
    log: Arc<Log>,
}

impl DirectReader {
    /// Open the bucket at `url` (`file:///dir`, a folder path, `s3://bucket/prefix`,
    /// `memory://`); `endpoint` for S3-compatible services such as LocalStack. S3 credentials
    /// come from the usual AWS environment variables.
    /// A local folder must exist: a reader never creates a bucket.
    pub fn open(url: &str, endpoint: Option<&str>) -> Result<Self> {
        let local = !url.contains("://") || url.starts_with("file://");
        let dir = url.strip_prefix("file://").unwrap_or(url);
        if local && !std::path::Path::new(dir).is_dir() {
            return Err(Error::Connect {
                url: url.to_string(),
                message: "no such folder".into(),
            });
        }
        let store = store::open(
            url,
            &StoreOptions {
                endpoint: endpoint.map(str::to_string),
                ..StoreOptions::default()
            },
        )?;
        Ok(Self::from_store(store))
    }

    /// A reader of an open store, with the defaults of a gateway (a waiting consumer looks
    /// at the journal head every 100 ms).
    pub fn from_store(store: DynStore) -> Self {
        Self::with_config(store, clock::system(), LogConfig::default())
    }

    pub fn with_config(store: DynStore, clock: Arc<dyn Clock>, cfg: LogConfig) -> Self {
        Self {
            log: Log::new(store, clock, cfg),
        }
    }

    /// The log this reader reads through.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The topic's current config.
    pub async fn topic(&self, name: &str) -> Result<Arc<TopicConfig>> {
        Ok(self.log.topics().get(name).await?)
    }

    /// A partition's earliest and next offsets, as `GET /v1/topics/{topic}` shows them.
    pub async fn partition_info(&self, topic: &str, partition: u32) -> Result<PartitionInfo> {
        let t = self.topic(topic).await?;
        Ok(self.log.partition_info(&t, partition).await?)
    }

    /// A consumer of one partition, positioned at `start`.
    pub async fn consumer(
        &self,
        topic: &str,
        partition: u32,
        start: Start,
    ) -> Result<DirectConsumer> {
        let t = self.topic(topic).await?;
        t.check_partition(partition)?;
        let next = self.log.start_offset(&t, partition, start).await?;
        Ok(DirectConsumer {
            log: self.log.clone(),
            name: topic.to_string(),
            partition,
            next,
            max_records: DEFAULT_MAX_RECORDS,
            max_bytes: DEFAULT_MAX_BYTES,
            filter: None,
            read_ahead: DEFAULT_READ_AHEAD,
            ahead: VecDeque::new(),
        })
    }
}

/// Follows one partition from the bucket.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sluice_sdk::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let bucket = dir.path().to_str().unwrap().to_string();
/// # let store = sluice_core::store::open(&bucket, &Default::default())?;
/// # let gateway = sluice_tests::http::Gateway::start(store, Default::default()).await;
/// # let url = gateway.url.clone();
/// use sluice_sdk::{Client, DirectReader, Record, Start};
/// use std::time::Duration;
///
/// // Produce through a gateway…
/// let client = Client::new(&url)?;
/// client.create_topic("clicks", 1, None).await?;
/// client.produce("clicks", &[Record::new(None, "a"), Record::new(None, "b")], None).await?;
///
/// // …and read the bucket directly (`bucket` is the folder the gateway serves).
/// let reader = DirectReader::open(&bucket, None)?;
/// let mut consumer = reader.consumer("clicks", 0, Start::Earliest).await?;
/// let batch = consumer.poll(Duration::ZERO).await?;
/// let values: Vec<_> = batch.records.iter().map(|r| r.record.value.clone()).collect();
/// assert_eq!(values, ["a", "b"]);
/// assert_eq!(consumer.position(), 2);
///
/// // Follow: a poll with a wait returns as soon as a new record commits.
/// client.produce("clicks", &[Record::new(None, "c")], None).await?;
/// let batch = consumer.poll(Duration::from_secs(10)).await?;
/// assert_eq!(batch.records[0].offset, 2);
/// # Ok(())
/// # }
/// ```
pub struct DirectConsumer {
    log: Arc<Log>,
    name: String,
    partition: u32,
    next: u64,
    max_records: usize,
    max_bytes: usize,
    filter: Option<Filter>,
    read_ahead: usize,
    /// Pages being read ahead, in offset order.
    ahead: VecDeque<Ahead>,
}

/// A page read ahead: `limit` records from `start`. Dropping it stops the read.
struct Ahead {
    start: u64,
    limit: usize,
    task: JoinHandle<Result<ReadBatch>>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The start offsets of the pages to read ahead: pages of `limit` records from `from` (where the
/// last page already planned ends, or the position), at most `free` of them, each starting below
/// `high_watermark` (a page from there would read nothing, or fail as past the end).
fn pages_to_plan(from: u64, limit: usize, free: usize, high_watermark: u64) -> Vec<u64> {
    let limit = limit.max(1) as u64;
    (0..free as u64)
        .map(|i| from.saturating_add(i.saturating_mul(limit)))
        .take_while(|&s| s < high_watermark)
        .collect()
}

impl DirectConsumer {
    /// The offset the next poll reads from.
    pub fn position(&self) -> u64 {
        self.next
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn topic(&self) -> &str {
        &self.name
    }

    /// Most records and (roughly) bytes per poll.
    pub fn set_limits(&mut self, max_records: usize, max_bytes: usize) {
        self.max_records = max_records.max(1);
        self.max_bytes = max_bytes.max(1);
        self.ahead.clear();
    }

    /// How many pages to read ahead of the position while the caller handles one (0: none).
    /// Memory held ahead is about `pages × max_bytes`.
    pub fn set_read_ahead(&mut self, pages: usize) {
        self.read_ahead = pages;
        self.ahead.truncate(pages);
    }

    /// Only records that pass `filter` (parse one with `Filter::parse`, the same grammar and
    /// evaluation as the gateway's `filter=`); records it drops still advance the position.
    pub fn set_filter(&mut self, filter: Option<Filter>) {
        self.filter = filter;
        self.ahead.clear();
    }

    /// Move to `start`.
    pub async fn seek(&mut self, start: Start) -> Result<()> {
        let t = self.log.topics().get(&self.name).await?;
        self.next = self.log.start_offset(&t, self.partition, start).await?;
        self.ahead.clear();
        Ok(())
    }

    /// The records from the position on, and advance past them. When there are none yet,
    /// wait up to `wait` for one to commit (`Duration::ZERO`: answer at once). An empty batch
    /// means the wait passed without a new record. A position that retention deleted, or past
    /// the end, is [`ErrorCode::OffsetOutOfRange`](crate::ErrorCode::OffsetOutOfRange) with the
    /// earliest and next offsets.
    pub async fn poll(&mut self, wait: Duration) -> Result<ReadBatch> {
        // Re-read the topic (cached briefly), so a deleted topic ends the consumer.
        let t = self.log.topics().get(&self.name).await?;
        let mut batch = self.next_page(&t).await?;
        if batch.records.is_empty() && !wait.is_zero() {
            // Past what a filter dropped, then wait for the next commit.
            self.next = batch.next_offset;
            self.ahead.clear();
            self.log
                .wait_for(&t, self.partition, self.next, wait)
                .await?;
            batch = self.read(&t, self.max_records).await?;
        }
        self.next = batch.next_offset;
        self.plan_ahead(&t, batch.high_watermark);
        Ok(batch)
    }

    /// The page at the position: read ahead already, or the gap before the next page read
    /// ahead, or read now.
    async fn next_page(&mut self, t: &Arc<TopicConfig>) -> Result<ReadBatch> {
        while self.ahead.front().is_some_and(|a| a.start < self.next) {
            self.ahead.pop_front();
        }
        if let Some(a) = self.ahead.front() {
            if a.start > self.next {
                // The page before ended early (its byte bound): read up to this one.
                let gap = usize::try_from(a.start - self.next).unwrap_or(usize::MAX);
                return self.read(t, gap.min(self.max_records)).await;
            }
        }
        if let Some(mut a) = self.ahead.pop_front() {
            match (&mut a.task).await {
                Ok(Ok(batch)) => return Ok(batch),
                // Read again now: an error that lasts is then this read's own.
                _ => self.ahead.clear(),
            }
        }
        self.read(t, self.max_records).await
    }

    /// Start reading the next pages (unfiltered consumers only).
    fn plan_ahead(&mut self, t: &Arc<TopicConfig>, high_watermark: u64) {
        if self.filter.is_some() || self.read_ahead == 0 {
            return;
        }
        let from = self
            .ahead
            .back()
            .map_or(self.next, |a| a.start.saturating_add(a.limit as u64));
        let free = self.read_ahead.saturating_sub(self.ahead.len());
        for start in pages_to_plan(from, self.max_records, free, high_watermark) {
            let (log, t, p) = (self.log.clone(), t.clone(), self.partition);
            let (limit, bytes) = (self.max_records, self.max_bytes);
            let task = tokio::spawn(async move {
                log.read(&t, p, start, limit, bytes)
                    .await
                    .map_err(Error::from)
            });
            self.ahead.push_back(Ahead { start, limit, task });
        }
    }

    async fn read(&self, t: &TopicConfig, limit: usize) -> Result<ReadBatch> {
        let (p, at, n, bytes) = (self.partition, self.next, limit, self.max_bytes);
        match &self.filter {
            None => self.log.read(t, p, at, n, bytes).await,
            Some(f) => {
                self.log
                    .read_filtered(t, p, at, n, bytes, f, ScanBudget::default())
                    .await
            }
        }
        .map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::pages_to_plan;

    #[test]
    fn pages_ahead_are_planned_a_page_apart_and_below_the_high_watermark() {
        assert_eq!(pages_to_plan(100, 10, 3, 1000), [100, 110, 120]);
        // Only pages that start before the end.
        assert_eq!(pages_to_plan(100, 10, 3, 115), [100, 110]);
        assert_eq!(pages_to_plan(100, 10, 3, 100), Vec::<u64>::new());
        assert_eq!(pages_to_plan(100, 10, 0, 1000), Vec::<u64>::new());
        // No overflow at the top of the offset space.
        assert_eq!(pages_to_plan(u64::MAX - 1, 10, 3, u64::MAX), [u64::MAX - 1]);
    }
}
