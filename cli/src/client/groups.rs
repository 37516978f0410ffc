//! `sluice groups list|describe|reset` and `sluice consume TOPIC --group G`.

use super::consume::ConsumeArgs;
use super::{table, Ctx, Failure, Outcome};
use clap::Subcommand;
use sluice_api::{GroupStart, JoinGroup, ResetOffsets};
use sluice_sdk::Start;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum GroupsCmd {
    /// Groups with their live members and total lag.
    List,
    /// Members, and per partition the committed offset, high watermark and lag.
    Describe { group: String },
    /// Move a group's committed offsets on a topic (admin).
    Reset {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or a time (RFC 3339).
        #[arg(long)]
        to: String,
        /// Only this partition (default: all).
        #[arg(long)]
        partition: Option<u32>,
    },
}

fn opt(o: Option<u64>) -> String {
    o.map_or_else(|| "-".into(), |v| v.to_string())
}

pub async fn run(ctx: &Ctx, cmd: GroupsCmd) -> Outcome {
    match cmd {
        GroupsCmd::List => {
            let groups = ctx.client.list_groups().await?;
            if ctx.json() {
                return ctx.print_json(&sluice_api::GroupList { groups });
            }
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| vec![g.group.clone(), g.members.to_string(), g.lag.to_string()])
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            ctx.print_line(&table(ctx.stdout_tty, &["GROUP", "MEMBERS", "LAG"], &rows))
        }
        GroupsCmd::Describe { group } => {
            let d = ctx.client.describe_group(&group).await?;
            if ctx.json() {
                return ctx.print_json(&d);
            }
            ctx.print_line(&format!(
                "group {}\ngeneration {}\nmembers {}\n",
                d.group,
                d.generation,
                d.members.len()
            ))?;
            let rows: Vec<Vec<String>> = d
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.topic.clone(),
                        p.partition.to_string(),
                        opt(p.committed_offset),
                        p.high_watermark.to_string(),
                        p.lag.to_string(),
                        p.member_id.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            ctx.print_line(&table(
                true,
                &["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"],
                &rows,
            ))
        }
        GroupsCmd::Reset {
            group,
            topic,
            to,
            partition,
        } => {
            let (to, timestamp_ms) = match to.as_str() {
                "earliest" | "latest" => (Some(to), None),
                o if o.parse::<u64>().is_ok() => (Some(to), None),
                t => match humantime::parse_rfc3339_weak(t) {
                    Ok(time) => {
                        let ms = time
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        (None, Some(ms))
                    }
                    Err(_) => {
                        return Err(Failure::usage(format!(
                            "--to {t:?}: give earliest, latest, an offset or an RFC 3339 time"
                        ))
                        .into())
                    }
                },
            };
            let a = ctx
                .client
                .reset_group(
                    &group,
                    &ResetOffsets {
                        topic,
                        partition,
                        to,
                        timestamp_ms,
                    },
                )
                .await?;
            if ctx.json() {
                return ctx.print_json(&a);
            }
            let rows: Vec<Vec<String>> = a
                .offsets
                .iter()
                .map(|o| {
                    vec![
                        o.topic.clone(),
                        o.partition.to_string(),
                        opt(o.committed_offset),
                    ]
                })
                .collect();
            ctx.print_line(&table(true, &["TOPIC", "PARTITION", "COMMITTED"], &rows))
        }
    }
}

/// Longest wait of one group poll when following.
const FOLLOW_WAIT: Duration = Duration::from_secs(10);

/// `consume TOPIC --group G`: join, poll, print, commit what was printed, leave.
pub async fn consume(ctx: &Ctx, args: &ConsumeArgs, group: &str) -> Outcome {
    let start = match (args.from, args.from_time, args.partition) {
        (_, Some(_), _) | (Start::Offset(_), _, _) | (Start::Timestamp(_), _, _) => {
            return Err(Failure::usage(
                "with --group, --from is earliest or latest (where nothing is committed); move \
                 committed offsets with `sluice groups reset`",
            )
            .into())
        }
        (_, _, Some(_)) => {
            return Err(Failure::usage(
                "with --group the group assigns the partitions; leave out --partition",
            )
            .into())
        }
        (Start::Earliest, None, None) => GroupStart::Earliest,
        (Start::Latest, None, None) => GroupStart::Latest,
    };
    let c = &ctx.client;
    let join = JoinGroup {
        topics: vec![args.topic.clone()],
        session_timeout_ms: None,
        start: Some(start),
        filter: args.filter.clone(),
    };
    let member = c.join_group(group, &join).await?.member_id;
    let outcome = consume_as(ctx, args, group, &member).await;
    // Leave either way, so the partitions go to the others at once.
    let _ = c.leave_group(group, &member).await;
    outcome
}

async fn consume_as(ctx: &Ctx, args: &ConsumeArgs, group: &str, member: &str) -> Outcome {
    let c = &ctx.client;
    let mut left = args.limit.unwrap_or(u64::MAX);
    while left > 0 {
        let wait = args.follow.then_some(FOLLOW_WAIT);
        let mut batch = c
            .poll_group(group, member, left.min(1000), wait, false)
            .await?;
        if batch.records.is_empty() {
            if args.follow {
                continue;
            }
            return Ok(());
        }
        batch.records.truncate(left.min(usize::MAX as u64) as usize);
        for r in &batch.records {
            super::consume::print_record(ctx, &r.topic, r.partition, &r.record)?;
        }
        left -= batch.records.len() as u64;
        c.commit_offsets(group, member, batch.generation, batch.next_offsets())
            .await?;
    }
    Ok(())
}
