//! Queue mode over REST (`rest-api.md`, "Queue mode"): records leased one by one, acked,
//! nacked or extended per receipt, dead letters and redrive.

use crate::client::{from_wire, Client};
use crate::error::Result;
use crate::groups::TopicRecord;
use reqwest::Method;
use sluice_api::{
    AckBody, ExtendBody, NackBody, PutQueue, Queue, QueueDetail, QueueList, ReceiveAnswer,
    ReceiveBody, RecordHistory, RedriveAnswer, RedriveBody, SettleAnswer,
};
use std::time::Duration;

/// One leased record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMessage {
    /// Ack, nack or extend with it while the lease is valid.
    pub receipt: String,
    /// Leases granted so far (1 on the first delivery).
    pub delivery_count: u32,
    pub record: TopicRecord,
}

impl Client {
    /// `PUT /v1/queues/{queue}`: create or update (admin); the dead-letter topic is created if
    /// absent.
    pub async fn put_queue(&self, queue: &str, config: &PutQueue) -> Result<Queue> {
        self.json(
            self.request(Method::PUT, &["v1", "queues", queue])
                .json(config),
        )
        .await
    }

    /// `GET /v1/queues/{queue}`: config and counts (ready, in flight, dead-lettered, …).
    pub async fn describe_queue(&self, queue: &str) -> Result<QueueDetail> {
        self.json(self.request(Method::GET, &["v1", "queues", queue]))
            .await
    }

    /// `GET /v1/queues`.
    pub async fn list_queues(&self) -> Result<Vec<Queue>> {
        let l: QueueList = self
            .json(self.request(Method::GET, &["v1", "queues"]))
            .await?;
        Ok(l.queues)
    }

    /// `DELETE /v1/queues/{queue}`.
    pub async fn delete_queue(&self, queue: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, &["v1", "queues", queue]))
            .await
            .map(drop)
    }

    /// `POST /v1/queues/{queue}/receive`: lease up to `max` records, waiting up to `wait`.
    pub async fn receive(
        &self,
        queue: &str,
        max: u64,
        visibility_timeout: Option<Duration>,
        wait: Option<Duration>,
    ) -> Result<Vec<QueueMessage>> {
        let body = ReceiveBody {
            max: Some(max),
            visibility_timeout_ms: visibility_timeout.map(|d| d.as_millis() as i64),
            wait_ms: wait.map(|d| d.as_millis() as u64),
        };
        let a: ReceiveAnswer = self
            .json(
                self.request(Method::POST, &["v1", "queues", queue, "receive"])
                    .json(&body)
                    .timeout(crate::DEFAULT_TIMEOUT + wait.unwrap_or_default()),
            )
            .await?;
        a.messages
            .into_iter()
            .map(|m| {
                Ok(QueueMessage {
                    receipt: m.receipt,
                    delivery_count: m.delivery_count,
                    record: TopicRecord {
                        topic: m.topic,
                        partition: m.partition,
                        record: from_wire(m.record)?,
                    },
                })
            })
            .collect()
    }

    /// `POST /v1/queues/{queue}/ack`. Rejections are per receipt, in the answer.
    pub async fn ack(&self, queue: &str, receipts: Vec<String>) -> Result<SettleAnswer> {
        self.json(
            self.request(Method::POST, &["v1", "queues", queue, "ack"])
                .json(&AckBody { receipts }),
        )
        .await
    }

    /// `POST /v1/queues/{queue}/nack`: ready again after `delay`, or dead-lettered after the
    /// last delivery.
    pub async fn nack(
        &self,
        queue: &str,
        receipts: Vec<String>,
        delay: Option<Duration>,
        reason: Option<String>,
    ) -> Result<SettleAnswer> {
        let body = NackBody {
            receipts,
            delay_ms: delay.map(|d| d.as_millis() as i64),
            reason,
        };
        self.json(
            self.request(Method::POST, &["v1", "queues", queue, "nack"])
                .json(&body),
        )
        .await
    }

    /// `POST /v1/queues/{queue}/extend`: the leases end `visibility_timeout` from now.
    pub async fn extend(
        &self,
        queue: &str,
        receipts: Vec<String>,
        visibility_timeout: Duration,
    ) -> Result<SettleAnswer> {
        let body = ExtendBody {
            receipts,
            visibility_timeout_ms: visibility_timeout.as_millis() as i64,
        };
        self.json(
            self.request(Method::POST, &["v1", "queues", queue, "extend"])
                .json(&body),
        )
        .await
    }

    /// `GET /v1/queues/{queue}/records/{partition}/{offset}`: one record's delivery history.
    pub async fn record_history(
        &self,
        queue: &str,
        partition: u32,
        offset: u64,
    ) -> Result<RecordHistory> {
        let (p, o) = (partition.to_string(), offset.to_string());
        self.json(self.request(Method::GET, &["v1", "queues", queue, "records", &p, &o]))
            .await
    }

    /// `POST /v1/queues/{queue}/redrive`: dead-lettered records become ready again (admin).
    pub async fn redrive(&self, queue: &str, body: &RedriveBody) -> Result<RedriveAnswer> {
        self.json(
            self.request(Method::POST, &["v1", "queues", queue, "redrive"])
                .json(body),
        )
        .await
    }
}
