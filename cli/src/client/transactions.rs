//! `sluice transactions list|describe|commit|rollback`: the transactions not finished yet
//! (records staged with `?transaction=` stay invisible until their commit), and deciding one by
//! hand — what an operator does with a transaction whose producer is gone.

use super::{format_time, table, Ctx, Outcome};
use clap::Subcommand;
use sluice_api::{TransactionInfo, TransactionState};

#[derive(Subcommand, Debug)]
pub enum TransactionsCmd {
    /// Transactions not finished yet (open, or decided and not cleaned up), oldest first.
    List {
        /// Most transactions listed (the gateway's default is 100, at most 1000).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// One transaction's state, records staged and check-backs made.
    Describe { transaction_id: String },
    /// Commit: every staged record becomes readable, all together.
    Commit { transaction_id: String },
    /// Roll back: the staged records are never visible.
    Rollback { transaction_id: String },
}

fn state(t: &TransactionInfo) -> &'static str {
    match t.state {
        TransactionState::Open => "open",
        TransactionState::Committed => "committed",
        TransactionState::RolledBack => "rolled_back",
    }
}

fn row(t: &TransactionInfo) -> Vec<String> {
    vec![
        t.transaction_id.clone(),
        state(t).to_string(),
        t.staged.to_string(),
        t.checks.to_string(),
        format_time(t.expires_at_ms),
    ]
}

const HEADER: [&str; 5] = ["TRANSACTION_ID", "STATE", "STAGED", "CHECKS", "EXPIRES_AT"];

pub async fn run(ctx: &Ctx, cmd: TransactionsCmd) -> Outcome {
    match cmd {
        TransactionsCmd::List { limit } => {
            let transactions = ctx.client.list_transactions(limit).await?;
            if ctx.json() {
                return ctx.print_json(&sluice_api::TransactionList { transactions });
            }
            if transactions.is_empty() {
                return if ctx.stdout_tty {
                    ctx.print_line("no transactions in progress")
                } else {
                    Ok(())
                };
            }
            let rows: Vec<Vec<String>> = transactions.iter().map(row).collect();
            ctx.print_line(&table(ctx.stdout_tty, &HEADER, &rows))
        }
        TransactionsCmd::Describe { transaction_id } => {
            let t = ctx.client.describe_transaction(&transaction_id).await?;
            if ctx.json() {
                return ctx.print_json(&t);
            }
            ctx.print_line(&table(ctx.stdout_tty, &HEADER, &[row(&t)]))
        }
        TransactionsCmd::Commit { transaction_id } => {
            let offsets = ctx.client.commit_transaction(&transaction_id).await?;
            if ctx.json() {
                return ctx.print_json(&sluice_api::TransactionCommitted { offsets });
            }
            ctx.print_line(&format!(
                "committed {transaction_id}: {} records readable",
                offsets.len()
            ))
        }
        TransactionsCmd::Rollback { transaction_id } => {
            ctx.client.rollback_transaction(&transaction_id).await?;
            if ctx.json() {
                return ctx.print_json(&serde_json::json!({ "rolled_back": transaction_id }));
            }
            ctx.print_line(&format!("rolled back {transaction_id}"))
        }
    }
}
