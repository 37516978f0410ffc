//! Consumer groups over REST (`rest-api.md`, "Consumer groups"): join, heartbeat, poll, commit,
//! leave, and the admin calls (describe, list, reset, delete).

use crate::client::{from_wire, Client};
use crate::error::Result;
use reqwest::Method;
use sluice_api::{
    CommitAnswer, CommitOffsets, GroupDetail, GroupList, GroupSummary, JoinGroup, Membership,
    OffsetCommit, PollAnswer, ResetOffsets,
};
use sluice_core::log::ReadRecord;
use std::time::Duration;

/// A record of some topic and partition (what group polls and queue receives return).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    pub topic: String,
    pub partition: u32,
    pub record: ReadRecord,
}

/// The answer to a group poll.
#[derive(Clone, Debug)]
pub struct GroupBatch {
    /// The generation the records were read under: commit with it.
    pub generation: u64,
    pub records: Vec<TopicRecord>,
}

impl GroupBatch {
    /// The offsets to commit once these records are processed: per partition, the offset after
    /// its last record.
    pub fn next_offsets(&self) -> Vec<OffsetCommit> {
        let mut out: Vec<OffsetCommit> = Vec::new();
        for r in &self.records {
            let next = r.record.offset + 1;
            match out
                .iter_mut()
                .find(|o| o.topic == r.topic && o.partition == r.partition)
            {
                Some(o) => o.offset = o.offset.max(next),
                None => out.push(OffsetCommit {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: next,
                }),
            }
        }
        out
    }
}

impl Client {
    /// `POST /v1/groups/{group}/members`: join; the answer has the member id and assignment.
    pub async fn join_group(&self, group: &str, join: &JoinGroup) -> Result<Membership> {
        self.json(
            self.request(Method::POST, &["v1", "groups", group, "members"])
                .json(join),
        )
        .await
    }

    /// `POST …/members/{member}/heartbeat`: stay a member; the assignment may have changed.
    /// [`ErrorCode::MemberNotFound`](crate::ErrorCode::MemberNotFound) once expired: join again.
    pub async fn heartbeat(&self, group: &str, member: &str) -> Result<Membership> {
        self.json(self.request(
            Method::POST,
            &["v1", "groups", group, "members", member, "heartbeat"],
        ))
        .await
    }

    /// `DELETE …/members/{member}`: leave; the partitions go to the others at once.
    pub async fn leave_group(&self, group: &str, member: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &["v1", "groups", group, "members", member]))
            .await
            .map(drop)
    }

    /// `GET /v1/groups/{group}/records`: records from the member's positions, waiting up to
    /// `wait` for some; `auto_commit` commits them before answering (at-most-once).
    pub async fn poll_group(
        &self,
        group: &str,
        member: &str,
        limit: u64,
        wait: Option<Duration>,
        auto_commit: bool,
    ) -> Result<GroupBatch> {
        let mut q: Vec<(&str, String)> = vec![
            ("member_id", member.to_string()),
            ("limit", limit.max(1).to_string()),
        ];
        let wait = wait.unwrap_or_default();
        if !wait.is_zero() {
            q.push(("wait_ms", wait.as_millis().to_string()));
        }
        if auto_commit {
            q.push(("auto_commit", "true".into()));
        }
        let a: PollAnswer = self
            .json(
                self.request_with(Method::GET, &["v1", "groups", group, "records"], &q)
                    .timeout(crate::DEFAULT_TIMEOUT + wait),
            )
            .await?;
        Ok(GroupBatch {
            generation: a.generation,
            records: a
                .records
                .into_iter()
                .map(|r| {
                    Ok(TopicRecord {
                        topic: r.topic,
                        partition: r.partition,
                        record: from_wire(r.record)?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// `POST /v1/groups/{group}/offsets`: commit (offset = the next to read).
    pub async fn commit_offsets(
        &self,
        group: &str,
        member: &str,
        generation: u64,
        offsets: Vec<OffsetCommit>,
    ) -> Result<CommitAnswer> {
        let body = CommitOffsets {
            member_id: member.to_string(),
            generation,
            offsets,
        };
        self.json(
            self.request(Method::POST, &["v1", "groups", group, "offsets"])
                .json(&body),
        )
        .await
    }

    /// `GET /v1/groups/{group}`: members, committed offsets and lag per partition.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDetail> {
        self.json(self.request(Method::GET, &["v1", "groups", group]))
            .await
    }

    /// `GET /v1/groups`.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        let l: GroupList = self
            .json(self.request(Method::GET, &["v1", "groups"]))
            .await?;
        Ok(l.groups)
    }

    /// `POST /v1/groups/{group}/reset`: move committed offsets (admin).
    pub async fn reset_group(&self, group: &str, reset: &ResetOffsets) -> Result<CommitAnswer> {
        self.json(
            self.request(Method::POST, &["v1", "groups", group, "reset"])
                .json(reset),
        )
        .await
    }

    /// `DELETE /v1/groups/{group}`.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &["v1", "groups", group]))
            .await
            .map(drop)
    }
}
