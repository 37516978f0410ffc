//! Reading a partition straight from the bucket, with no gateway in the data path: fan-out costs
//! object-store GETs, not gateway CPU. [`DirectReader`] opens the bucket (the same URLs as the
//! servers: `file:///dir`, `s3://bucket/prefix`); each [`DirectConsumer`] follows one partition.
//!
//! This is the gateway's own read path, not a second one: [`sluice_core::log::Log`] resolves
//! the start ([`Log::start_offset`]), reads ([`Log::read`]: the compactor's indexes, then the
//! journal tail) and waits for new commits ([`Log::wait_for`], polling the journal head).

use crate::error::{Error, Result};
use sluice_core::clock::{self, Clock};
use sluice_core::filter::Filter;
use sluice_core::log::{Log, LogConfig, PartitionInfo, ReadBatch, ScanBudget, Start};
use sluice_core::store::{self, DynStore, S3Options};
use sluice_core::topic::TopicConfig;
use std::sync::Arc;
use std::time::Duration;

/// Most records one [`DirectConsumer::poll`] returns (default), as a gateway answer.
pub const DEFAULT_MAX_RECORDS: usize = 1000;
/// Roughly the most record bytes one poll returns (default).
pub const DEFAULT_MAX_BYTES: usize = 4 << 20;

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
            &S3Options {
                endpoint: endpoint.map(str::to_string),
                ..S3Options::default()
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
    }

    /// Only records that pass `filter` (parse one with `Filter::parse`, the same grammar and
    /// evaluation as the gateway's `filter=`); records it drops still advance the position.
    pub fn set_filter(&mut self, filter: Option<Filter>) {
        self.filter = filter;
    }

    /// Move to `start`.
    pub async fn seek(&mut self, start: Start) -> Result<()> {
        let t = self.log.topics().get(&self.name).await?;
        self.next = self.log.start_offset(&t, self.partition, start).await?;
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
        let mut batch = self.read(&t).await?;
        if batch.records.is_empty() && !wait.is_zero() {
            // Past what a filter dropped, then wait for the next commit.
            self.next = batch.next_offset;
            self.log
                .wait_for(&t, self.partition, self.next, wait)
                .await?;
            batch = self.read(&t).await?;
        }
        self.next = batch.next_offset;
        Ok(batch)
    }

    async fn read(&self, t: &TopicConfig) -> Result<ReadBatch> {
        let (p, at, n, bytes) = (self.partition, self.next, self.max_records, self.max_bytes);
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
