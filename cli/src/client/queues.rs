//! `sluice queues create|list|describe|redrive`.

use super::{format_ms, parse_duration, table, Ctx, Outcome};
use clap::{Subcommand, ValueEnum};
use sluice_api::{OrderingWire, PutQueue, RedriveBody, StartWire};
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Ordering {
    None,
    Key,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum QueueStart {
    Earliest,
    Latest,
}

#[derive(Subcommand, Debug)]
pub enum QueuesCmd {
    /// Create (or update) a queue over a topic (admin); its dead-letter topic is created too.
    Create {
        queue: String,
        #[arg(long)]
        topic: String,
        /// How long a leased record stays invisible to others, e.g. 30s.
        #[arg(long, value_parser = parse_duration)]
        visibility_timeout: Option<Duration>,
        /// Deliveries before a record is dead-lettered.
        #[arg(long)]
        max_deliveries: Option<u32>,
        /// Default: QUEUE.dlq.
        #[arg(long)]
        dead_letter_topic: Option<String>,
        /// `key`: per-key FIFO (a record waits while an earlier one of its key is unacked).
        #[arg(long, value_enum)]
        ordering: Option<Ordering>,
        /// Where the queue starts in the topic.
        #[arg(long, value_enum)]
        start: Option<QueueStart>,
        /// Only records that pass this filter.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Queues.
    List,
    /// A queue's config and counts: ready, in flight, delayed, acked, dead-lettered.
    Describe { queue: String },
    /// Make dead-lettered records ready again in this queue (admin).
    Redrive {
        queue: String,
        /// Count only.
        #[arg(long)]
        dry_run: bool,
        /// At most this many.
        #[arg(long)]
        max: Option<u64>,
        /// Only dead-lettered records that pass this filter.
        #[arg(long)]
        filter: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: QueuesCmd) -> Outcome {
    let c = &ctx.client;
    match cmd {
        QueuesCmd::Create {
            queue,
            topic,
            visibility_timeout,
            max_deliveries,
            dead_letter_topic,
            ordering,
            start,
            filter,
        } => {
            let body = PutQueue {
                topic,
                visibility_timeout_ms: visibility_timeout.map(|d| d.as_millis() as i64),
                max_deliveries,
                dead_letter_topic,
                ordering: ordering.map(|o| match o {
                    Ordering::None => OrderingWire::None,
                    Ordering::Key => OrderingWire::Key,
                }),
                start: start.map(|s| match s {
                    QueueStart::Earliest => StartWire::Earliest,
                    QueueStart::Latest => StartWire::Latest,
                }),
                filter,
            };
            let q = c.put_queue(&queue, &body).await?;
            if ctx.json() {
                return ctx.print_json(&q);
            }
            ctx.print_line(&format!(
                "queue {} over {} (visibility timeout {}, {} deliveries, dead letters to {})",
                q.queue,
                q.topic,
                format_ms(q.visibility_timeout_ms),
                q.max_deliveries,
                q.dead_letter_topic
            ))
        }
        QueuesCmd::List => {
            let queues = c.list_queues().await?;
            if ctx.json() {
                return ctx.print_json(&sluice_api::QueueList { queues });
            }
            let rows: Vec<Vec<String>> = queues
                .iter()
                .map(|q| {
                    vec![
                        q.queue.clone(),
                        q.topic.clone(),
                        q.dead_letter_topic.clone(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            ctx.print_line(&table(
                ctx.stdout_tty,
                &["QUEUE", "TOPIC", "DEAD LETTERS"],
                &rows,
            ))
        }
        QueuesCmd::Describe { queue } => {
            let d = c.describe_queue(&queue).await?;
            if ctx.json() {
                return ctx.print_json(&d);
            }
            let (q, s) = (&d.config, &d.stats);
            ctx.print_line(&format!(
                "queue {}\ntopic {}\nvisibility timeout {}\nmax deliveries {}\ndead letters {}\n\
                 ordering {}\n",
                q.queue,
                q.topic,
                format_ms(q.visibility_timeout_ms),
                q.max_deliveries,
                q.dead_letter_topic,
                q.ordering
            ))?;
            ctx.print_line(&table(
                true,
                &[
                    "READY",
                    "IN FLIGHT",
                    "DELAYED",
                    "ACKED",
                    "DEAD",
                    "OLDEST READY",
                ],
                &[vec![
                    s.ready.to_string(),
                    s.in_flight.to_string(),
                    s.delayed.to_string(),
                    s.acked.to_string(),
                    s.dead_lettered.to_string(),
                    format_ms(s.oldest_ready_age_ms),
                ]],
            ))
        }
        QueuesCmd::Redrive {
            queue,
            dry_run,
            max,
            filter,
        } => {
            let a = c
                .redrive(
                    &queue,
                    &RedriveBody {
                        filter,
                        max,
                        dry_run: dry_run.then_some(true),
                    },
                )
                .await?;
            if ctx.json() {
                return ctx.print_json(&a);
            }
            ctx.print_line(&match (a.redriven, a.would_redrive) {
                (_, Some(n)) => format!("would redrive {n} records"),
                (Some(n), _) => format!("redrove {n} records"),
                (None, None) => "redrove 0 records".into(),
            })
        }
    }
}
