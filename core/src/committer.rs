//! Group commit of one journal shard: every caller's appends that arrive while a commit is in
//! flight go into the *next* journal entry together, through the one commit protocol of
//! [`ShardLog::commit`]. One process commits to a shard through one [`GroupCommitter`]: its own
//! flushes, and on the shard's elected committer the appends other gateways hand it (see
//! [`CommitForwarder`] and `docs/ARCHITECTURE.md`).
//!
//! Order: submissions are committed in arrival order, and their appends in submission order
//! inside an entry, so a caller that waits for each answer before submitting again (the
//! gateway's batcher does, per shard) has its commits in its own order (I3).
//! Correctness does not depend on who commits: an entry is created only at `head + 1` of a
//! head that applied every entry before it, whoever writes it.

use crate::error::{Error, Result};
use crate::head::{Outcome, PendingAppend};
use crate::ids::ObjectId;
use crate::shard::ShardLog;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What a commit answers: one outcome per append, and the entry's append timestamp.
pub type Committed = (Vec<Outcome>, i64);

/// How a process hands its appends to the shard's committer elsewhere (implemented by the
/// gateway over HTTP).
#[async_trait]
pub trait CommitForwarder: Send + Sync {
    /// Whether `shard`'s committer is another process (as far as is known now).
    fn is_remote(&self, shard: u32) -> bool;

    /// `None`: commit here (this process is the committer, there is none, or it is unreachable
    /// and certainly did not take the appends). `Some`: the committer's answer, or an error
    /// when the outcome is unknown (the appends may still be committed; retryable).
    async fn forward(&self, shard: u32, pending: &[PendingAppend]) -> Option<Result<Committed>>;
}

/// The one way this process's commits to a shard leave it when a [`CommitForwarder`] is
/// installed: a FIFO whose task sends everything queued as one hand-over to the remote
/// committer (one at a time, waiting for each answer), or queues it in the local
/// [`GroupCommitter`] when the committer is here, unknown or unreachable. Before a hand-over
/// to the remote committer it waits until the local commits queued earlier have finished, so
/// this process's commits stay in the order they were queued whichever way each goes (I3).
#[derive(Clone)]
pub struct HandOver {
    tx: mpsc::UnboundedSender<Submission>,
}

impl HandOver {
    pub fn spawn(
        shard: u32,
        forwarder: Arc<dyn CommitForwarder>,
        local: GroupCommitter,
        cfg: GroupConfig,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(hand_over(shard, forwarder, local, cfg, rx));
        Self { tx }
    }

    /// Queue `pending`; the receiver gets its answer. Commits queued one after the other are
    /// committed in that order.
    pub fn enqueue(&self, pending: Vec<PendingAppend>) -> oneshot::Receiver<Result<Committed>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Submission {
            pending,
            received: Instant::now(),
            reply,
        });
        rx
    }
}

/// A round: `first` and whatever else is queued now, up to `max_appends` appends.
fn drain(
    first: Submission,
    rx: &mut mpsc::UnboundedReceiver<Submission>,
    max_appends: usize,
) -> Vec<Submission> {
    let mut appends = first.pending.len();
    let mut round = vec![first];
    while appends < max_appends {
        match rx.try_recv() {
            Ok(s) => {
                appends += s.pending.len();
                round.push(s);
            }
            Err(_) => break,
        }
    }
    round
}

/// Answer each submission of a round with its share of `result`.
fn reply_all(subs: Vec<Submission>, result: Result<Committed>) {
    let sizes: Vec<usize> = subs.iter().map(|s| s.pending.len()).collect();
    let parts = result.and_then(|(outcomes, ts)| {
        split_outcomes(outcomes, &sizes)
            .map(|p| (p, ts))
            .ok_or_else(|| Error::Internal("commit answered the wrong number of outcomes".into()))
    });
    match parts {
        Ok((parts, ts)) => {
            for (s, part) in subs.into_iter().zip(parts) {
                let _ = s.reply.send(Ok((part, ts)));
            }
        }
        Err(e) => {
            let n = subs.len();
            for (s, e) in subs.into_iter().zip(e.spread(n)) {
                let _ = s.reply.send(Err(e));
            }
        }
    }
}

async fn hand_over(
    shard: u32,
    forwarder: Arc<dyn CommitForwarder>,
    local: GroupCommitter,
    cfg: GroupConfig,
    mut rx: mpsc::UnboundedReceiver<Submission>,
) {
    // Completes (its sender drops) when the last local commit queued has been answered.
    let mut local_tail: Option<oneshot::Receiver<()>> = None;
    while let Some(first) = rx.recv().await {
        let round = drain(first, &mut rx, cfg.max_appends);
        let all: Vec<PendingAppend> = round.iter().flat_map(|s| s.pending.clone()).collect();
        if forwarder.is_remote(shard) {
            if let Some(tail) = local_tail.take() {
                let _ = tail.await;
            }
            if let Some(answer) = forwarder.forward(shard, &all).await {
                reply_all(round, answer);
                continue;
            }
        }
        let queued = local.enqueue(all);
        let (done_tx, done_rx) = oneshot::channel::<()>();
        local_tail = Some(done_rx);
        tokio::spawn(async move {
            reply_all(round, wait(queued).await);
            drop(done_tx);
        });
    }
}

/// Limits of a round.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// Appends in one journal entry, at most (more wait for the next round).
    pub max_appends: usize,
    /// A submission that waited this long is answered with a retryable error instead of being
    /// committed, so a committer that stalled does not commit what its callers gave up on.
    pub max_wait: Duration,
    /// A submission whose oldest segment is within this of the commit deadline is refused
    /// (retryable) rather than risk failing the whole round on the deadline.
    pub deadline_margin_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            max_appends: 10_000,
            max_wait: Duration::from_secs(10),
            deadline_margin_ms: 10_000,
        }
    }
}

struct Submission {
    pending: Vec<PendingAppend>,
    received: Instant,
    reply: oneshot::Sender<Result<Committed>>,
}

/// The group committer of one shard in this process. Cheap to clone; its task ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::UnboundedSender<Submission>,
}

impl GroupCommitter {
    /// Start the committer task of `shard` on the current tokio runtime.
    pub fn spawn(shard: Arc<ShardLog>, cfg: GroupConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(shard, cfg, rx));
        Self { tx }
    }

    /// Commit `pending` in the next round; answers one outcome per append.
    pub async fn commit(&self, pending: Vec<PendingAppend>) -> Result<Committed> {
        wait(self.enqueue(pending)).await
    }

    /// Queue `pending` for the next round now; the receiver gets its answer. Appends queued
    /// one after the other are committed in that order (in one entry, or the later in a later
    /// entry).
    pub fn enqueue(&self, pending: Vec<PendingAppend>) -> oneshot::Receiver<Result<Committed>> {
        let (reply, rx) = oneshot::channel();
        let sub = Submission {
            pending,
            received: Instant::now(),
            reply,
        };
        // If the task is gone the submission (and its reply sender) is dropped: `wait` says so.
        let _ = self.tx.send(sub);
        rx
    }
}

/// The answer of an [`enqueue`](GroupCommitter::enqueue)d commit.
pub async fn wait(rx: oneshot::Receiver<Result<Committed>>) -> Result<Committed> {
    rx.await
        .map_err(|_| Error::Stale("the shard committer has stopped".into()))?
}

/// The oldest segment the appends reference (`None` for no batches).
fn oldest_segment<'a>(pending: impl IntoIterator<Item = &'a PendingAppend>) -> Option<ObjectId> {
    pending
        .into_iter()
        .flat_map(|p| p.batches.iter().map(|b| b.segment))
        .min_by_key(|s| s.created_ms())
}

/// Split the outcomes of one round back into each submission's share, in order.
fn split_outcomes(mut outcomes: Vec<Outcome>, sizes: &[usize]) -> Option<Vec<Vec<Outcome>>> {
    if outcomes.len() != sizes.iter().sum::<usize>() {
        return None;
    }
    let mut parts = Vec::with_capacity(sizes.len());
    for &n in sizes {
        let rest = outcomes.split_off(n);
        parts.push(std::mem::replace(&mut outcomes, rest));
    }
    Some(parts)
}

async fn run(shard: Arc<ShardLog>, cfg: GroupConfig, mut rx: mpsc::UnboundedReceiver<Submission>) {
    let deadline_ms = shard.config().commit_deadline_ms - cfg.deadline_margin_ms;
    while let Some(first) = rx.recv().await {
        let round = drain(first, &mut rx, cfg.max_appends);
        let now = shard.now_ms();
        let mut live = Vec::with_capacity(round.len());
        for s in round {
            let too_old =
                oldest_segment(&s.pending).is_some_and(|seg| now - seg.created_ms() > deadline_ms);
            if s.received.elapsed() > cfg.max_wait || too_old {
                let _ = s.reply.send(Err(Error::Stale(
                    "waited too long for the shard committer".into(),
                )));
            } else {
                live.push(s);
            }
        }
        let Some(segment) = oldest_segment(live.iter().flat_map(|s| &s.pending)) else {
            // Only empty submissions: nothing to write.
            for s in live {
                let _ = s.reply.send(Ok((Vec::new(), 0)));
            }
            continue;
        };
        let all: Vec<PendingAppend> = live.iter().flat_map(|s| s.pending.clone()).collect();
        reply_all(live, shard.commit(&all, segment).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(n: u64) -> Outcome {
        Outcome::Committed {
            batches: vec![crate::format::journal::BatchRef {
                partition: 0,
                base_offset: n,
                record_count: 1,
                segment: ObjectId::from_ulid(crate::ids::new_ulid(0)),
                pos: 0,
                len: 0,
            }],
        }
    }

    #[test]
    fn outcomes_split_back_in_submission_order() {
        let all: Vec<Outcome> = (0..6).map(committed).collect();
        let parts = split_outcomes(all.clone(), &[2, 0, 3, 1]).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], all[0..2]);
        assert!(parts[1].is_empty());
        assert_eq!(parts[2], all[2..5]);
        assert_eq!(parts[3], all[5..6]);
        assert!(split_outcomes(all, &[2, 2]).is_none());
    }
}
