//! Delayed records over REST (`rest-api.md`, "Delayed records"): a record produced with a
//! [`Delay`] gets its offset only when due (until then no read, group or queue sees it); the
//! produce answer gives its `delayed_id` instead. Pending ones are listed soonest first and can
//! be cancelled until they are due.
//!
//! With an `Idempotency-Key` a delayed produce is retried safely (within the 10-minute window
//! the retry gets the first answer and the records are delivered once), as the
//! [`Producer`](crate::Producer) does.

use crate::client::Client;
use crate::error::{Error, Result};
use reqwest::Method;
use sluice_api::{DelayedList, DelayedOut, ProduceRecord};
use std::time::Duration;

/// When a delayed record becomes visible: the contract allows up to 365 days ahead.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sluice_sdk::Error> {
/// # let store = sluice_core::store::open("memory://", &Default::default())?;
/// # let gateway = sluice_tests::http::Gateway::start(store, Default::default()).await;
/// # let url = gateway.url.clone();
/// use sluice_sdk::{api::ProducedRecord, Client, Delay, ErrorCode, ProduceOptions, Record};
/// use std::time::Duration;
///
/// let client = Client::new(&url)?;
/// client.create_topic("reminders", 1, None).await?;
/// let later = ProduceOptions {
///     delay: Some(Delay::For(Duration::from_secs(3600))),
///     ..Default::default()
/// };
/// let answer = client
///     .produce("reminders", &[Record::new(Some(b"user-7"), "renew")], Some(&later))
///     .await?;
/// let ProducedRecord::Delayed(d) = &answer.offsets[0] else { panic!("not delayed") };
///
/// // Pending: listed (soonest first), invisible to reads until due, cancellable once.
/// let pending = client.list_delayed("reminders", None).await?;
/// assert_eq!(pending[0].delayed_id, d.delayed_id);
/// client.cancel_delayed("reminders", &d.delayed_id).await?;
/// let again = client.cancel_delayed("reminders", &d.delayed_id).await.unwrap_err();
/// assert_eq!(again.code(), Some(ErrorCode::DelayedNotFound));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    /// This long after the gateway receives it (`delay_ms`).
    For(Duration),
    /// At this time, in milliseconds since the Unix epoch (`deliver_at_ms`; a time in the past
    /// delivers at once).
    Until(i64),
}

impl Delay {
    /// Put this delay on a wire record (`delay_ms` or `deliver_at_ms`, the other cleared).
    pub fn apply(self, r: &mut ProduceRecord) {
        match self {
            Delay::For(d) => {
                r.delay_ms = Some(d.as_millis().min(i64::MAX as u128) as i64);
                r.deliver_at_ms = None;
            }
            Delay::Until(t) => {
                r.delay_ms = None;
                r.deliver_at_ms = Some(t);
            }
        }
    }
}

impl Client {
    /// `GET /v1/topics/{topic}/delayed?limit=`: up to `limit` pending delayed records (the
    /// gateway's default is 100, at most 1000), soonest first.
    pub async fn list_delayed(&self, topic: &str, limit: Option<u64>) -> Result<Vec<DelayedOut>> {
        let query: Vec<(&str, String)> = limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        let l: DelayedList = self
            .json(self.request_with(Method::GET, &["v1", "topics", topic, "delayed"], &query))
            .await?;
        Ok(l.delayed)
    }

    /// `DELETE /v1/topics/{topic}/delayed/{id}`: cancel a record that is not yet due. Once it
    /// was delivered, cancelled or never existed: [`ErrorCode::DelayedNotFound`](crate::ErrorCode::DelayedNotFound).
    pub async fn cancel_delayed(&self, topic: &str, delayed_id: &str) -> Result<()> {
        if delayed_id.is_empty() {
            return Err(Error::Invalid("an empty delayed id".into()));
        }
        self.send(self.request(
            Method::DELETE,
            &["v1", "topics", topic, "delayed", delayed_id],
        ))
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_sets_exactly_one_field() {
        let mut r = crate::to_wire(&crate::Record::new(None, "v"), None).unwrap();
        Delay::Until(1_700_000_000_000).apply(&mut r);
        assert_eq!(
            (r.delay_ms, r.deliver_at_ms),
            (None, Some(1_700_000_000_000))
        );
        Delay::For(Duration::from_millis(1500)).apply(&mut r);
        assert_eq!((r.delay_ms, r.deliver_at_ms), (Some(1500), None));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["delay_ms"], 1500);
    }
}
