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
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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

    /// How many hand-overs of one shard may be in flight at once (numbered, so that the
    /// committer queues them in this process's order: see [`HandOverOrder`]).
    fn max_in_flight(&self) -> usize {
        1
    }

    /// `None`: commit here (this process is the committer, there is none, or it is unreachable
    /// and certainly did not take the appends). `Some`: the committer's answer, or an error
    /// when the outcome is unknown (the appends may still be committed; retryable).
    async fn forward(
        &self,
        shard: u32,
        pending: &[PendingAppend],
        order: HandOverOrder,
    ) -> Option<Result<Committed>>;
}

/// The place of one hand-over in its sender's order: the committer queues hand-over `number`
/// of `session` (one per sending process and shard) only after `after` (the newest hand-over of
/// the session that was still unanswered when this one was sent; `None`: none was), and refuses
/// one that arrives after a later number of its session was queued (its sender gave up on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandOverOrder {
    pub session: u128,
    pub number: u64,
    pub after: Option<u64>,
}

impl HandOverOrder {
    /// As the `x-sluice-hand-over` header: `{session:032x}/{number}/{after or -}`.
    pub fn to_header(&self) -> String {
        match self.after {
            Some(a) => format!("{:032x}/{}/{a}", self.session, self.number),
            None => format!("{:032x}/{}/-", self.session, self.number),
        }
    }

    /// Parse [`to_header`](Self::to_header)'s form; `None` if it is anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let (session, number, after) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || session.len() != 32 {
            return None;
        }
        let session = u128::from_str_radix(session, 16).ok()?;
        let number: u64 = number.parse().ok()?;
        let after = match after {
            "-" => None,
            a => Some(a.parse::<u64>().ok().filter(|a| *a < number)?),
        };
        Some(Self {
            session,
            number,
            after,
        })
    }
}

/// What the committer does with a numbered hand-over, given the newest number of its session
/// queued so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Everything it must follow is queued: queue it now.
    Queue,
    /// The hand-over it must follow has not arrived yet: wait for it.
    Hold,
    /// A later hand-over of its session was queued already: refuse it (not committed).
    Late,
}

/// The committer's rule for numbered hand-overs (see [`HandOverOrder`]).
pub fn admit(queued: Option<u64>, order: &HandOverOrder) -> Admit {
    if queued.is_some_and(|q| order.number <= q) {
        return Admit::Late;
    }
    match order.after {
        None => Admit::Queue,
        Some(a) if queued.is_some_and(|q| a <= q) => Admit::Queue,
        Some(_) => Admit::Hold,
    }
}

/// The committer's side of numbered hand-overs: per (shard, session), the newest number
/// queued; a hand-over waits (at most `hold`) for the one it must follow, then is refused
/// with a retryable error, not committed.
pub struct Sequencer {
    sessions: std::sync::Mutex<HashMap<(u32, u128), (u64, Instant)>>,
    changed: tokio::sync::Notify,
    hold: Duration,
}

/// A session not heard from for this long is forgotten (a hand-over that names an earlier one
/// of it is then held and refused, and its sender starts over without `after`).
const SESSION_IDLE: Duration = Duration::from_secs(300);

impl Sequencer {
    pub fn new(hold: Duration) -> Self {
        Self {
            sessions: std::sync::Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            hold,
        }
    }

    /// Run `enqueue` (which queues the hand-over in the group committer) once `order`'s turn
    /// has come; an error (retryable, nothing queued) if it came late or its predecessor did
    /// not come within the hold time.
    pub async fn admit<T>(
        &self,
        shard: u32,
        order: &HandOverOrder,
        enqueue: impl FnOnce() -> T,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + self.hold;
        let key = (shard, order.session);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
                match admit(sessions.get(&key).map(|(q, _)| *q), order) {
                    Admit::Queue => {
                        let queued = enqueue();
                        sessions.retain(|_, (_, at)| at.elapsed() < SESSION_IDLE);
                        sessions.insert(key, (order.number, Instant::now()));
                        drop(sessions);
                        self.changed.notify_waiters();
                        return Ok(queued);
                    }
                    Admit::Late => {
                        return Err(Error::Stale(format!(
                            "hand-over {} arrived after a later one of its gateway: not \
                             committed, retry",
                            order.number
                        )))
                    }
                    Admit::Hold => {}
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::Stale(format!(
                    "hand-over {} waited {:?} for hand-over {:?} of its gateway, which did not \
                     come: not committed, retry",
                    order.number, self.hold, order.after
                )));
            }
        }
    }
}

/// The one way this process's commits to a shard leave it when a [`CommitForwarder`] is
/// installed: a FIFO whose task sends everything queued as one hand-over to the remote
/// committer, up to [`CommitForwarder::max_in_flight`] hand-overs in flight, each numbered
/// ([`HandOverOrder`]) so that the committer queues them in this order; or queues it in the
/// local [`GroupCommitter`] when the committer is here, unknown or unreachable. Switching
/// between the two waits until what went the other way has been answered, so this process's
/// commits stay in the order they were queued whichever way each goes (I3). A hand-over that
/// fails (or falls back to a local commit) breaks the chain: the next one is sent only once
/// every hand-over in flight has been answered, and without `after`.
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

/// Whether the sender of this receiver has been dropped (its hand-over is answered).
fn finished(done: &mut oneshot::Receiver<()>) -> bool {
    matches!(done.try_recv(), Err(oneshot::error::TryRecvError::Closed))
}

async fn hand_over(
    shard: u32,
    forwarder: Arc<dyn CommitForwarder>,
    local: GroupCommitter,
    cfg: GroupConfig,
    mut rx: mpsc::UnboundedReceiver<Submission>,
) {
    let session = u128::from_be_bytes(crate::ids::new_ulid(0).to_bytes());
    let slots = Arc::new(tokio::sync::Semaphore::new(
        forwarder.max_in_flight().max(1),
    ));
    let broken = Arc::new(AtomicBool::new(false));
    let mut next = 0u64;
    // Completes (its sender drops) when the last local commit queued has been answered.
    let mut local_tail: Option<oneshot::Receiver<()>> = None;
    // Completes when the last hand-over sent (and so every earlier one) has been answered.
    let mut remote_tail: Option<oneshot::Receiver<()>> = None;
    while let Some(first) = rx.recv().await {
        let round = drain(first, &mut rx, cfg.max_appends);
        let all: Vec<PendingAppend> = round.iter().flat_map(|s| s.pending.clone()).collect();
        if forwarder.is_remote(shard) {
            if let Some(tail) = local_tail.take() {
                let _ = tail.await;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            if broken.swap(false, Ordering::SeqCst) {
                if let Some(tail) = remote_tail.take() {
                    let _ = tail.await;
                }
            }
            // (A receiver seen finished must not be awaited again: drop it.)
            if remote_tail.as_mut().is_some_and(finished) {
                remote_tail = None;
            }
            let after = remote_tail.as_ref().and(next.checked_sub(1));
            let order = HandOverOrder {
                session,
                number: next,
                after,
            };
            next += 1;
            let (done_tx, done_rx) = oneshot::channel::<()>();
            let previous = remote_tail.replace(done_rx);
            let (forwarder, local, broken) = (forwarder.clone(), local.clone(), broken.clone());
            tokio::spawn(async move {
                let answer = forwarder.forward(shard, &all, order).await;
                drop(slot);
                match answer {
                    Some(answer) => {
                        if answer.is_err() {
                            broken.store(true, Ordering::SeqCst);
                        }
                        reply_all(round, answer);
                    }
                    None => {
                        // Not taken there: commit here, after everything handed over before.
                        broken.store(true, Ordering::SeqCst);
                        if let Some(p) = previous {
                            let _ = p.await;
                        }
                        reply_all(round, wait(local.enqueue(all)).await);
                        drop(done_tx);
                        return;
                    }
                }
                if let Some(p) = previous {
                    let _ = p.await;
                }
                drop(done_tx);
            });
            continue;
        }
        if let Some(tail) = remote_tail.take() {
            let _ = tail.await;
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

    fn order(number: u64, after: Option<u64>) -> HandOverOrder {
        HandOverOrder {
            session: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
            number,
            after,
        }
    }

    #[test]
    fn hand_over_order_round_trips_as_a_header_and_rejects_garbage() {
        for o in [order(0, None), order(7, Some(6)), order(u64::MAX, Some(3))] {
            assert_eq!(HandOverOrder::parse(&o.to_header()), Some(o));
        }
        assert_eq!(
            order(7, Some(6)).to_header(),
            "0123456789abcdef0011223344556677/7/6"
        );
        for bad in [
            "",
            "0123456789abcdef0011223344556677/7",
            "0123456789abcdef0011223344556677/7/6/5",
            "0123456789abcdef001122334455667/7/6",
            "0123456789abcdef0011223344556677/x/6",
            "0123456789abcdef0011223344556677/7/7",
            "0123456789abcdef0011223344556677/7/9",
            "0123456789abcdef0011223344556677/-1/-",
            "zz23456789abcdef0011223344556677/7/-",
        ] {
            assert_eq!(HandOverOrder::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn admit_queues_in_number_order_and_refuses_late_arrivals() {
        // Nothing queued yet: a first hand-over queues, one that follows another waits.
        assert_eq!(admit(None, &order(0, None)), Admit::Queue);
        assert_eq!(admit(None, &order(1, Some(0))), Admit::Hold);
        // 0 queued: 1 (after 0) queues; 2 (after 1) waits for 1.
        assert_eq!(admit(Some(0), &order(1, Some(0))), Admit::Queue);
        assert_eq!(admit(Some(0), &order(2, Some(1))), Admit::Hold);
        // Sent when nothing was in flight: queues whatever came before.
        assert_eq!(admit(Some(0), &order(5, None)), Admit::Queue);
        // A number at or below the newest queued came too late: its sender gave up on it.
        assert_eq!(admit(Some(5), &order(3, Some(2))), Admit::Late);
        assert_eq!(admit(Some(5), &order(5, None)), Admit::Late);
    }

    #[tokio::test]
    async fn sequencer_queues_out_of_order_arrivals_in_number_order() {
        let seq = Arc::new(Sequencer::new(Duration::from_secs(30)));
        let queued = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Hand-overs 0..5 of one session, each after the previous, arriving in reverse order.
        let mut tasks = Vec::new();
        for n in (0..5u64).rev() {
            let (seq, queued) = (seq.clone(), queued.clone());
            tasks.push(tokio::spawn(async move {
                seq.admit(3, &order(n, n.checked_sub(1)), || {
                    queued.lock().unwrap().push(n)
                })
                .await
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(*queued.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        // Another shard, same session: its own order.
        seq.admit(4, &order(0, None), || ()).await.unwrap();
        // A late one is refused without being queued.
        let late = seq.admit(3, &order(2, Some(1)), || panic!("queued")).await;
        assert!(matches!(late, Err(Error::Stale(_))));
    }

    /// A remote committer that takes numbered hand-overs after a random delay each (so they
    /// arrive out of order) through a [`Sequencer`], and records the order it queued appends in.
    struct Scrambling {
        seq: Sequencer,
        queued: std::sync::Mutex<Vec<u32>>,
        in_flight: std::sync::atomic::AtomicUsize,
        /// Hand-overs wait here until the test opens it.
        open: tokio::sync::watch::Receiver<bool>,
    }

    #[async_trait]
    impl CommitForwarder for Scrambling {
        fn is_remote(&self, _: u32) -> bool {
            true
        }
        fn max_in_flight(&self) -> usize {
            4
        }
        async fn forward(
            &self,
            shard: u32,
            pending: &[PendingAppend],
            order: HandOverOrder,
        ) -> Option<Result<Committed>> {
            use std::sync::atomic::Ordering::SeqCst;
            self.in_flight.fetch_add(1, SeqCst);
            let _ = self.open.clone().wait_for(|o| *o).await;
            let delay = crate::ids::new_ulid(0).to_bytes()[15] % 8;
            tokio::time::sleep(Duration::from_millis(delay as u64)).await;
            let ids: Vec<u32> = pending.iter().map(|p| p.partition_count).collect();
            let admitted = self
                .seq
                .admit(shard, &order, || self.queued.lock().unwrap().extend(ids))
                .await;
            self.in_flight.fetch_sub(1, SeqCst);
            Some(admitted.map(|()| (pending.iter().map(|_| committed(0)).collect(), 1)))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hand_overs_in_flight_together_are_queued_in_the_order_given() {
        use std::sync::atomic::Ordering::SeqCst;
        let (open, gate) = tokio::sync::watch::channel(false);
        let remote = Arc::new(Scrambling {
            seq: Sequencer::new(Duration::from_secs(30)),
            queued: std::sync::Mutex::new(Vec::new()),
            in_flight: 0.into(),
            open: gate,
        });
        // Never used: the committer is always remote and always answers.
        let (tx, _rx) = mpsc::unbounded_channel();
        let local = GroupCommitter { tx };
        let hand_over = HandOver::spawn(0, remote.clone(), local, GroupConfig::default());
        let append = |id| {
            vec![PendingAppend {
                topic: crate::ids::TopicId([0; 16]),
                partition_count: id,
                dedup_key: None,
                batches: Vec::new(),
                producer: None,
            }]
        };
        // Four hand-overs, each sent before the previous is answered: all in flight at once.
        let mut answers = Vec::new();
        for id in 0..4u32 {
            answers.push(hand_over.enqueue(append(id)));
            while remote.in_flight.load(SeqCst) <= id as usize {
                tokio::task::yield_now().await;
            }
        }
        // A fifth waits for a free slot.
        answers.push(hand_over.enqueue(append(4)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(remote.in_flight.load(SeqCst), 4);
        open.send(true).unwrap();
        for id in 5..200u32 {
            answers.push(hand_over.enqueue(append(id)));
            if id % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        for a in answers {
            assert_eq!(wait(a).await.unwrap().0.len(), 1);
        }
        assert_eq!(*remote.queued.lock().unwrap(), (0..200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn sequencer_refuses_a_hand_over_whose_predecessor_never_comes() {
        let seq = Sequencer::new(Duration::from_millis(50));
        let held = seq.admit(0, &order(8, Some(7)), || panic!("queued")).await;
        assert!(matches!(held, Err(Error::Stale(_))));
        // The chain starts over without `after`.
        assert_eq!(seq.admit(0, &order(9, None), || 9).await.unwrap(), 9);
    }
}
