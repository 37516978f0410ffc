//! `sluice delayed list|cancel`: a topic's pending delayed records (produced with
//! `sluice produce --delay` / `--deliver-at`), soonest first, and cancelling one before it is due.

use super::{format_time, table, Ctx, Outcome};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum DelayedCmd {
    /// Pending delayed records of a topic, soonest first.
    List {
        topic: String,
        /// Most records listed (the gateway's default is 100, at most 1000).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Cancel a delayed record that is not yet due (exit 1, `delayed_not_found`, once it was
    /// delivered, cancelled or never existed).
    Cancel { topic: String, delayed_id: String },
}

pub async fn run(ctx: &Ctx, cmd: DelayedCmd) -> Outcome {
    match cmd {
        DelayedCmd::List { topic, limit } => {
            let delayed = ctx.client.list_delayed(&topic, limit).await?;
            if ctx.json() {
                return ctx.print_json(&sluice_api::DelayedList { delayed });
            }
            let rows: Vec<Vec<String>> = delayed
                .iter()
                .map(|d| {
                    vec![
                        d.delayed_id.clone(),
                        format_time(d.deliver_at_ms),
                        d.key.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                return if ctx.stdout_tty {
                    ctx.print_line("no delayed records")
                } else {
                    Ok(())
                };
            }
            ctx.print_line(&table(
                ctx.stdout_tty,
                &["DELAYED_ID", "DELIVER_AT", "KEY"],
                &rows,
            ))
        }
        DelayedCmd::Cancel { topic, delayed_id } => {
            ctx.client.cancel_delayed(&topic, &delayed_id).await?;
            if ctx.json() {
                return ctx.print_json(&serde_json::json!({ "cancelled": delayed_id }));
            }
            ctx.print_line(&format!("cancelled {delayed_id}"))
        }
    }
}
