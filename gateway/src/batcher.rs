//! Group commit. Produce handlers hand their request to one batcher task; the task collects
//! requests into a flush (from the first request until `linger` has passed or `max_flush_bytes`
//! are gathered) and writes each flush as one segment plus one journal commit per shard.
//!
//! Up to `max_flushes_in_flight` segment PUTs run at once, but commits happen strictly in flush
//! order: each flush hands its appends over for commit only after the previous flush has handed
//! over its own (queued in the shard's group commit, which keeps that order, or answered by the
//! shard's committer in another gateway), so a producer that sends request A and then, after A
//! was queued, request B sees A's records before B's. Flushes queued while a journal entry is
//! being written share the next one.
//! While all flush slots are busy the batch being formed keeps growing (up to the byte limit).

use crate::metrics::Metrics;
use crate::overload::PendingPermit;
use sluice_core::log::{Log, ProduceAck, ProduceRequest};
use sluice_core::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

/// How the batcher forms flushes.
#[derive(Clone, Debug)]
pub struct BatcherConfig {
    pub linger: Duration,
    pub max_flush_bytes: usize,
    pub max_flushes_in_flight: usize,
}

struct Job {
    request: ProduceRequest,
    bytes: usize,
    /// `None` for `ack=none`: the outcome is only logged.
    reply: Option<oneshot::Sender<Result<ProduceAck>>>,
    /// The request's share of `max_pending_bytes`, given back once its commit has finished.
    permit: Option<PendingPermit>,
    /// When the request was handed over: its ack latency starts here.
    queued: Instant,
}

/// The handle produce handlers use. Cheap to clone; the task ends when every handle is dropped
/// (after flushing what was queued).
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

/// The batcher task is gone (the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the produce batcher has stopped")]
pub struct Stopped;

impl Batcher {
    /// Start the batcher task on the current tokio runtime.
    pub fn spawn(log: Arc<Log>, cfg: BatcherConfig, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(log, cfg, metrics, rx));
        Self { tx }
    }

    /// Queue a request and wait for its commit. `permit` (if any) is dropped when the commit
    /// has finished, before the answer is sent.
    pub async fn produce(
        &self,
        request: ProduceRequest,
        permit: Option<PendingPermit>,
    ) -> Result<Result<ProduceAck>, Stopped> {
        let answer = self.enqueue(request, permit).await?;
        answer.await.map_err(|_| Stopped)
    }

    /// Queue a request; the receiver gets its answer after the commit. Requests are committed
    /// in the order they were queued.
    pub async fn enqueue(
        &self,
        request: ProduceRequest,
        permit: Option<PendingPermit>,
    ) -> Result<oneshot::Receiver<Result<ProduceAck>>, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.send(request, Some(reply), permit).await?;
        Ok(rx)
    }

    /// Queue a request without waiting for its commit; failures are logged. `permit` is held
    /// until the commit has finished.
    pub async fn produce_detached(
        &self,
        request: ProduceRequest,
        permit: Option<PendingPermit>,
    ) -> Result<(), Stopped> {
        self.send(request, None, permit).await
    }

    async fn send(
        &self,
        request: ProduceRequest,
        reply: Option<oneshot::Sender<Result<ProduceAck>>>,
        permit: Option<PendingPermit>,
    ) -> Result<(), Stopped> {
        let bytes = request.encoded_len();
        self.tx
            .send(Job {
                request,
                bytes,
                reply,
                permit,
                queued: Instant::now(),
            })
            .await
            .map_err(|_| Stopped)
    }
}

struct Flush {
    jobs: Vec<Job>,
    bytes: usize,
}

impl Flush {
    fn push(&mut self, job: Job) {
        self.bytes += job.bytes;
        self.jobs.push(job);
    }
}

async fn run(
    log: Arc<Log>,
    cfg: BatcherConfig,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_flushes_in_flight.max(1)));
    // Completes when the previous flush has handed its appends over for commit (or given up).
    let mut previous: Option<oneshot::Receiver<()>> = None;
    let mut open = true;
    while open {
        let Some(first) = rx.recv().await else { break };
        let mut flush = Flush {
            bytes: 0,
            jobs: Vec::new(),
        };
        flush.push(first);
        let full = |f: &Flush| f.bytes >= cfg.max_flush_bytes;
        // Linger: gather what arrives until the deadline or the byte limit.
        let deadline = Instant::now() + cfg.linger;
        while open && !full(&flush) {
            tokio::select! {
                biased;
                job = rx.recv() => match job {
                    Some(job) => flush.push(job),
                    None => open = false,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Wait for a flush slot, still gathering while we wait.
        let slot = loop {
            if !open || full(&flush) {
                break slots.clone().acquire_owned().await;
            }
            tokio::select! {
                biased;
                slot = slots.clone().acquire_owned() => break slot,
                job = rx.recv() => match job {
                    Some(job) => flush.push(job),
                    None => open = false,
                },
            }
        };
        let Ok(slot) = slot else {
            // The semaphore is never closed; fail the flush rather than hang if it were.
            fail(flush.jobs, "flush slots closed");
            break;
        };
        let (queued_tx, queued_rx) = oneshot::channel();
        let wait_for = previous.replace(queued_rx);
        let log = log.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            metrics.flushes_in_flight.inc();
            let mut requests = Vec::with_capacity(flush.jobs.len());
            let mut waiters = Vec::with_capacity(flush.jobs.len());
            for job in flush.jobs {
                waiters.push((
                    job.reply,
                    job.bytes,
                    job.request.records.len(),
                    job.permit,
                    job.queued,
                ));
                requests.push(job.request);
            }
            let n = requests.len();
            let prepared = log.write_segment(requests).await;
            if let Some(prev) = wait_for {
                // An error only means the previous flush task ended without signalling.
                let _ = prev.await;
            }
            let results = log.commit(prepared, Some(queued_tx)).await;
            drop(slot);
            metrics.flushes_in_flight.dec();
            metrics.flush_done(n, started.elapsed());
            for ((reply, bytes, records, permit, queued), result) in
                waiters.into_iter().zip(results)
            {
                // The commit is over: give the request's bytes back before answering.
                drop(permit);
                metrics
                    .produce_ack_seconds
                    .observe(queued.elapsed().as_secs_f64());
                match &result {
                    Ok(ack) if ack.duplicate => Metrics::inc(&metrics.produce_duplicates),
                    Ok(_) => {
                        Metrics::add(&metrics.produced_records, records as u64);
                        Metrics::add(&metrics.produced_bytes, bytes as u64);
                    }
                    Err(e) => {
                        Metrics::inc(&metrics.produce_failures);
                        if reply.is_none() {
                            tracing::warn!(error = %e, "produce with ack=none failed");
                        }
                    }
                }
                if let Some(reply) = reply {
                    // The client may have gone away; its records are committed regardless.
                    let _ = reply.send(result);
                }
            }
        });
    }
    tracing::debug!("produce batcher stopped");
}

fn fail(jobs: Vec<Job>, why: &str) {
    for job in jobs {
        if let Some(reply) = job.reply {
            let _ = reply.send(Err(Error::Stale(why.to_string())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_core::clock;
    use sluice_core::format::record::Record;
    use sluice_core::log::LogConfig;
    use sluice_core::store::{self, FaultConfig, Instrumented, StoreOptions};

    /// Segment PUTs with random latency finish out of order; commits must not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_flushes_commit_in_queue_order() {
        let inner = store::open("memory://", &StoreOptions::default()).unwrap();
        let faulty = Instrumented::new(inner, 7);
        faulty.set_faults(FaultConfig {
            latency: Some((Duration::from_millis(1), Duration::from_millis(30))),
            only_prefix: Some("segments/".into()),
            ..Default::default()
        });
        let log = Log::new(faulty, clock::system(), LogConfig::default());
        let topic = log.topics().create("t", 2, None, 0).await.unwrap();
        let metrics = Metrics::new();
        let batcher = Batcher::spawn(
            log.clone(),
            BatcherConfig {
                linger: Duration::from_millis(1),
                max_flush_bytes: 1 << 20,
                max_flushes_in_flight: 4,
            },
            metrics.clone(),
        );
        let mut answers = Vec::new();
        for i in 0..60u32 {
            let request = ProduceRequest {
                topic: topic.clone(),
                records: vec![(Some(i % 2), Record::new(None, Bytes::from(i.to_string())))],
                dedup_key: None,
                producer: None,
            };
            answers.push(batcher.enqueue(request, None).await.unwrap());
            if i % 3 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let mut last = [None::<u64>; 2];
        for (i, answer) in answers.into_iter().enumerate() {
            let ack = answer.await.unwrap().unwrap();
            let (p, offset) = ack.offsets[0];
            assert_eq!(p as usize, i % 2);
            if let Some(prev) = last[p as usize] {
                assert_eq!(offset, prev + 1, "request {i} committed out of order");
            }
            last[p as usize] = Some(offset);
        }
        let flushes = metrics.flushes.get();
        assert!(flushes > 1 && flushes < 60, "{flushes} flushes");
    }
}
