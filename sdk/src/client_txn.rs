//! Transactions over REST (`rest-api.md`, "Transactions"): begin, stage records, commit or roll
//! back, describe. Records staged in a transaction get no offsets and are invisible to every
//! read, group and queue until it commits; past its timeout an open transaction is checked back
//! at its `check_url`.

use crate::client::{to_wire, Client};
use crate::error::{Error, Result};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use sluice_api::{
    BeginTransaction, ProduceBody, StagedAnswer, Transaction, TransactionCommitted,
    TransactionInfo, TransactionList, TransactionOffset,
};
use sluice_core::format::record::Record;
use std::time::Duration;

impl Client {
    /// `POST /v1/transactions`: a new transaction that stops accepting records after `timeout`
    /// (default 60 s), checked back at `check_url` then (rolled back without one).
    pub async fn begin_transaction(
        &self,
        timeout: Option<Duration>,
        check_url: Option<&str>,
    ) -> Result<Transaction> {
        let body = BeginTransaction {
            timeout_ms: timeout.map(|t| t.as_millis().min(u64::MAX as u128) as u64),
            check_url: check_url.map(str::to_string),
        };
        self.json(
            self.request(Method::POST, &["v1", "transactions"])
                .json(&body),
        )
        .await
    }

    /// `POST /v1/topics/{topic}/records?transaction={id}`: stage records (routed like any
    /// produce: `partition`, else the key, else one partition per request). Answers how many
    /// were staged; a retry with the same `idempotency_key` stages nothing more and answers the
    /// first request's count.
    pub async fn stage(
        &self,
        transaction: &str,
        topic: &str,
        records: &[Record],
        partition: Option<u32>,
        idempotency_key: Option<&str>,
    ) -> Result<u64> {
        let body = ProduceBody {
            records: records
                .iter()
                .map(|r| to_wire(r, partition))
                .collect::<Result<_>>()?,
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut req = self
            .request_with(
                Method::POST,
                &["v1", "topics", topic, "records"],
                &[("transaction", transaction.to_string())],
            )
            .header(CONTENT_TYPE, "application/json")
            .body(bytes);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let a: StagedAnswer = self.json(req).await?;
        Ok(a.staged)
    }

    /// `POST /v1/transactions/{id}/commit`: every staged record's offset, in staging order,
    /// once all are readable. Idempotent: safe to retry after a lost answer; `transaction_closed`
    /// if it was rolled back.
    pub async fn commit_transaction(&self, transaction: &str) -> Result<Vec<TransactionOffset>> {
        let a: TransactionCommitted = self
            .json(self.request(Method::POST, &["v1", "transactions", transaction, "commit"]))
            .await?;
        Ok(a.offsets)
    }

    /// `POST /v1/transactions/{id}/rollback`: the staged records are never visible. Idempotent;
    /// `transaction_closed` if it was committed.
    pub async fn rollback_transaction(&self, transaction: &str) -> Result<()> {
        self.send(self.request(
            Method::POST,
            &["v1", "transactions", transaction, "rollback"],
        ))
        .await?;
        Ok(())
    }

    /// `GET /v1/transactions`: the transactions not finished yet (open, or decided and not
    /// cleaned up), oldest first; at most `limit` (the gateway's default 100, at most 1000).
    pub async fn list_transactions(&self, limit: Option<u64>) -> Result<Vec<TransactionInfo>> {
        let query: Vec<(&str, String)> = limit
            .map(|l| ("limit", l.to_string()))
            .into_iter()
            .collect();
        let l: TransactionList = self
            .json(self.request_with(Method::GET, &["v1", "transactions"], &query))
            .await?;
        Ok(l.transactions)
    }

    /// `GET /v1/transactions/{id}`: state, records staged, check-backs made.
    pub async fn describe_transaction(&self, transaction: &str) -> Result<TransactionInfo> {
        self.json(self.request(Method::GET, &["v1", "transactions", transaction]))
            .await
    }
}
