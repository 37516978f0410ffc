//! `sluice topics create|list|describe|delete`.

use super::{format_ms, format_time, parse_duration, table, Ctx, Outcome};
use clap::Subcommand;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum TopicsCmd {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (1 to 10 000).
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Delete records older than this, e.g. 7d, 12h, 30m, 500ms (default: keep forever).
        #[arg(long, value_parser = parse_duration)]
        retention: Option<Duration>,
    },
    /// List topics.
    List,
    /// A topic's config and per partition its earliest and next offset.
    Describe { name: String },
    /// Delete a topic and its records.
    Delete { name: String },
}

fn retention(ms: Option<i64>) -> String {
    ms.map_or_else(|| "forever".into(), format_ms)
}

pub async fn run(ctx: &Ctx, cmd: TopicsCmd) -> Outcome {
    match cmd {
        TopicsCmd::Create {
            name,
            partitions,
            retention: keep,
        } => {
            let t = ctx.client.create_topic(&name, partitions, keep).await?;
            if ctx.json() {
                return ctx.print_json(&t);
            }
            ctx.print_line(&format!(
                "created topic {} ({} partition{}, retention {})",
                t.name,
                t.partitions,
                if t.partitions == 1 { "" } else { "s" },
                retention(t.retention_ms)
            ))
        }
        TopicsCmd::List => {
            let topics = ctx.client.list_topics().await?;
            if ctx.json() {
                return ctx.print_json(&sluice_api::TopicList { topics });
            }
            let rows: Vec<Vec<String>> = topics
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.partitions.to_string(),
                        retention(t.retention_ms),
                    ]
                })
                .collect();
            if rows.is_empty() {
                if ctx.stdout_tty {
                    ctx.print_line("no topics")?;
                }
                return Ok(());
            }
            ctx.print_line(&table(
                ctx.stdout_tty,
                &["NAME", "PARTITIONS", "RETENTION"],
                &rows,
            ))
        }
        TopicsCmd::Describe { name } => {
            let d = ctx.client.describe_topic(&name).await?;
            if ctx.json() {
                return ctx.print_json(&d);
            }
            let t = &d.topic;
            ctx.print_line(&format!(
                "topic {}\nid {}\npartitions {}\nretention {}\ncreated {}\n",
                t.name,
                t.id,
                t.partitions,
                retention(t.retention_ms),
                format_time(t.created_ms)
            ))?;
            let rows: Vec<Vec<String>> = d
                .partition_info
                .iter()
                .map(|p| {
                    vec![
                        p.partition.to_string(),
                        p.earliest_offset.to_string(),
                        p.next_offset.to_string(),
                        p.last_append_ms.map_or_else(|| "-".into(), format_time),
                    ]
                })
                .collect();
            ctx.print_line(&table(
                true,
                &["PARTITION", "EARLIEST", "NEXT", "LAST APPEND"],
                &rows,
            ))
        }
        TopicsCmd::Delete { name } => {
            ctx.client.delete_topic(&name).await?;
            if ctx.json() {
                return ctx.print_json(&serde_json::json!({ "deleted": name }));
            }
            ctx.print_line(&format!("deleted topic {name}"))
        }
    }
}
