//! The client commands of `cli.md`, run as the real `sluice` binary against a spawned
//! `sluice dev` on a free port: outputs, `--output json` shapes, exit codes (1 the server or
//! store said no, 2 usage, 3 unreachable), one-line errors and no panic on bad input.

mod common;

use common::{free_port, Proc};
use serde_json::Value;
use sluice_tests::http::send;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Dev {
    _proc: Proc,
    url: String,
    dir: tempfile::TempDir,
}

async fn dev() -> Dev {
    dev_with(&[]).await
}

async fn dev_with(env: &[(&str, &str)]) -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::dev(&dir.path().join("data"), free_port(), env);
    proc.wait_healthy().await;
    Dev {
        url: proc.url(),
        _proc: proc,
        dir,
    }
}

impl Dev {
    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }
}

fn command(url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.args(args)
        .env("SLUICE_URL", url)
        .env_remove("SLUICE_OUTPUT")
        .env_remove("SLUICE_TOKEN")
        .env_remove("SLUICE_S3_ENDPOINT")
        .env("SLUICE_LOG", "warn");
    c
}

/// Run to the end with `stdin` as input.
fn sluice(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = command(url, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(url: &str, args: &[&str]) -> String {
    let o = sluice(url, args, "");
    assert!(o.status.success(), "{args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

/// Fails with `code`, saying it in one line on stderr (clap's usage errors may take more).
fn fails(url: &str, args: &[&str], code: i32) -> String {
    let o = sluice(url, args, "");
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    if code != 2 {
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_produce_and_consume() {
    let d = dev().await;
    let u = &d.url;
    assert_eq!(
        ok(
            u,
            &[
                "topics",
                "create",
                "orders",
                "--partitions",
                "3",
                "--retention",
                "7d"
            ]
        ),
        "created topic orders (3 partitions, retention 7days)\n"
    );
    let t: Value =
        serde_json::from_str(&ok(u, &["topics", "create", "logs", "--output", "json"])).unwrap();
    assert_eq!(
        (t["name"].as_str(), t["partitions"].as_u64()),
        (Some("logs"), Some(1))
    );
    assert!(t["retention_ms"].is_null());
    // Piped: plain lines, no header.
    assert_eq!(
        ok(u, &["topics", "list"]),
        "logs\t1\tforever\norders\t3\t7days\n"
    );
    let l: Value = serde_json::from_str(&ok(u, &["topics", "list", "--output", "json"])).unwrap();
    assert_eq!(l["topics"].as_array().unwrap().len(), 2);
    assert_eq!(l["topics"][1]["retention_ms"], 604_800_000);

    // Produce from a file, KEY:VALUE lines, a header on each.
    let file = d.dir.path().join("in.txt");
    std::fs::write(&file, "user-1:one\nuser-2:two:2\nuser-1:three\n").unwrap();
    let f = file.display().to_string();
    let a: Value = serde_json::from_str(&ok(
        u,
        &[
            "produce",
            "orders",
            "--file",
            &f,
            "--key-separator",
            ":",
            "--header",
            "src=cli",
            "--output",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(a["acked"], 3);
    assert!(a["first"]["partition"].is_u64() && a["last"]["offset"].is_u64());
    // From stdin, to one partition.
    let o = sluice(
        u,
        &["produce", "orders", "--partition", "2"],
        "four\nfive\n",
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "acked 2 records\n");

    let all = json_lines(&ok(u, &["consume", "orders", "--output", "json"]));
    assert_eq!(all.len(), 5);
    let keys: Vec<&str> = all[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "topic",
        "partition",
        "offset",
        "timestamp_ms",
        "key",
        "value",
        "headers",
    ] {
        assert!(keys.contains(&k), "{k} missing in {:?}", all[0]);
    }
    let mut values: Vec<&str> = all.iter().map(|r| r["value"].as_str().unwrap()).collect();
    values.sort();
    assert_eq!(values, ["five", "four", "one", "three", "two:2"]);
    let one = all.iter().find(|r| r["value"] == "one").unwrap();
    assert_eq!(
        (one["key"].as_str(), one["headers"]["src"].as_str()),
        (Some("user-1"), Some("cli"))
    );
    // Same key, same partition, in order.
    let p1 = one["partition"].as_u64().unwrap().to_string();
    let same = ok(u, &["consume", "orders", "--partition", &p1]);
    let lines: Vec<&str> = same.lines().collect();
    let (i1, i3) = (
        lines.iter().position(|l| *l == "one").unwrap(),
        lines.iter().position(|l| *l == "three").unwrap(),
    );
    assert!(i1 < i3, "{lines:?}");
    let in_2 = all.iter().filter(|r| r["partition"] == 2).count();
    let last_of_2 = (in_2 - 1).to_string();
    assert_eq!(
        ok(
            u,
            &[
                "consume",
                "orders",
                "--partition",
                "2",
                "--from",
                &last_of_2
            ]
        ),
        "five\n"
    );
    assert_eq!(
        ok(u, &["consume", "orders", "--limit", "2"])
            .lines()
            .count(),
        2
    );
    assert_eq!(ok(u, &["consume", "orders", "--from", "latest"]), "");

    // Replay from a time: only what was appended since.
    std::thread::sleep(Duration::from_millis(20));
    let since = sluice_tests::now_ms();
    std::thread::sleep(Duration::from_millis(20));
    let o = sluice(u, &["produce", "orders", "--partition", "0"], "later\n");
    assert!(o.status.success());
    assert_eq!(
        ok(u, &["consume", "orders", "--from-time", &since.to_string()]),
        "later\n"
    );
    let rfc = humantime_rfc3339(since);
    assert_eq!(
        ok(u, &["consume", "orders", "--from-time", &rfc]),
        "later\n"
    );

    // Straight from the bucket: the same lines as through the gateway.
    let rest = ok(u, &["consume", "orders", "--output", "json"]);
    let direct = ok(
        u,
        &[
            "consume",
            "orders",
            "--store",
            &d.data(),
            "--output",
            "json",
        ],
    );
    assert_eq!(direct, rest);
    let file_url = format!("file://{}", d.data());
    assert_eq!(
        ok(
            u,
            &["consume", "orders", "--store", &file_url, "--output", "json"]
        ),
        rest
    );

    // Describe: per partition earliest and next offset.
    let desc: Value = serde_json::from_str(&ok(
        u,
        &["topics", "describe", "orders", "--output", "json"],
    ))
    .unwrap();
    let next: u64 = desc["partition_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["next_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(next, 6);
    let text = ok(u, &["topics", "describe", "orders"]);
    assert!(text.contains("PARTITION  EARLIEST  NEXT"), "{text}");

    assert_eq!(ok(u, &["topics", "delete", "logs"]), "deleted topic logs\n");
    let l: Value = serde_json::from_str(&ok(u, &["topics", "list", "--output", "json"])).unwrap();
    assert_eq!(l["topics"].as_array().unwrap().len(), 1);
}

fn humantime_rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_with_the_documented_exit_codes() {
    let d = dev().await;
    let u = &d.url;
    ok(u, &["topics", "create", "t"]);
    // 1: the server said no, with its detail and code.
    assert!(fails(u, &["consume", "nope"], 1).contains("(topic_not_found)"));
    assert!(fails(u, &["topics", "create", "t"], 1).contains("(topic_exists)"));
    assert!(fails(u, &["topics", "describe", "nope"], 1).contains("(topic_not_found)"));
    assert!(
        fails(u, &["topics", "create", "x", "--partitions", "0"], 1).contains("(invalid_request)")
    );
    assert!(fails(u, &["topics", "create", "bad/name"], 1).contains("(invalid_request)"));
    assert!(fails(u, &["consume", "t", "--from", "99"], 1).contains("(offset_out_of_range)"));
    assert!(fails(u, &["consume", "t", "--partition", "7"], 1).contains("(partition_not_found)"));
    assert!(fails(u, &["produce", "nope"], 1).contains("(topic_not_found)"));
    let missing = d.dir.path().join("in-no-such-file").display().to_string();
    fails(u, &["produce", "t", "--file", &missing], 1);
    // The store said no.
    let empty = tempfile::tempdir().unwrap();
    let e = fails(
        u,
        &["consume", "t", "--store", empty.path().to_str().unwrap()],
        1,
    );
    assert!(e.contains("(topic_not_found)"), "{e}");
    // 2: usage.
    for args in [
        &["consume"][..],
        &["consume", "t", "--from", "soon"],
        &["consume", "t", "--from-time", "yesterday"],
        &["consume", "t", "--from", "1", "--from-time", "5"],
        &["consume", "t", "--limit", "-1"],
        &["topics", "create", "x", "--retention", "7x"],
        &["topics", "create", "x", "--partitions", "many"],
        &["produce", "t", "--header", "novalue"],
        &["topics", "list", "--output", "xml"],
        &["topics", "frobnicate"],
        &["bench", "--duration", "forever"],
    ] {
        fails(u, args, 2);
    }
    fails("not a url", &["topics", "list"], 2);
    // 3: unreachable server or store.
    let dead = format!("http://127.0.0.1:{}", free_port());
    assert!(fails(&dead, &["topics", "list"], 3).contains("cannot reach"));
    fails(&dead, &["consume", "t"], 3);
    let o = sluice(&dead, &["produce", "t"], "x\n");
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let gone = d.dir.path().join("no-such-bucket").display().to_string();
    fails(u, &["consume", "t", "--store", &gone], 3);
    assert!(
        !std::path::Path::new(&gone).exists(),
        "a reader never creates a bucket"
    );
    // An S3 endpoint nobody listens on (the store client's retries give up within seconds).
    let e = command(
        u,
        &[
            "consume",
            "t",
            "--store",
            "s3://bucket/prefix",
            "--endpoint",
            &format!("http://127.0.0.1:{}", free_port()),
        ],
    )
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .output()
    .unwrap();
    let err = String::from_utf8(e.stderr).unwrap();
    assert_eq!(e.status.code(), Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // --help everywhere.
    for args in [
        &["--help"][..],
        &["topics", "--help"],
        &["topics", "create", "--help"],
        &["produce", "--help"],
        &["consume", "--help"],
        &["groups", "--help"],
        &["groups", "reset", "--help"],
        &["queues", "--help"],
        &["queues", "create", "--help"],
        &["bench", "--help"],
    ] {
        let o = sluice(u, args, "");
        assert!(o.status.success(), "{args:?}");
        assert!(String::from_utf8(o.stdout).unwrap().contains("Usage"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_come_from_the_flag_or_the_environment() {
    let d = dev_with(&[("SLUICE_TOKENS", "boss=admin:*;reader=consume:orders")]).await;
    let u = &d.url;
    assert!(fails(u, &["topics", "create", "orders"], 1).contains("(unauthorized)"));
    ok(u, &["topics", "create", "orders", "--token", "boss"]);
    let o = command(u, &["produce", "orders"])
        .env("SLUICE_TOKEN", "boss")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let o = sluice(u, &["produce", "orders", "--token", "reader"], "x\n");
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("(forbidden)") && e.trim_end().lines().count() == 1,
        "{e}"
    );
    assert_eq!(ok(u, &["consume", "orders", "--token", "reader"]), "");
    assert!(
        fails(u, &["topics", "delete", "orders", "--token", "reader"], 1).contains("(forbidden)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_new_records_until_the_limit() {
    let d = dev().await;
    let u = &d.url;
    ok(u, &["topics", "create", "live", "--partitions", "2"]);
    for store in [None, Some(d.data())] {
        let mut args = vec![
            "consume", "live", "--follow", "--limit", "3", "--output", "json",
        ];
        if let Some(s) = &store {
            args.extend(["--store", s.as_str()]);
        }
        let child = command(u, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = sluice(u, &["produce", "live"], "a\nb\nc\n");
        assert!(o.status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
        let out = tokio::time::timeout_at(deadline.into(), out)
            .await
            .expect("follow exits at its limit")
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(lines.len(), 3, "{store:?}");
        assert!(lines.iter().all(|l| l["topic"] == "live"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_prints_a_table_or_one_json_document() {
    let d = dev().await;
    let u = &d.url;
    let args = [
        "bench",
        "--duration",
        "1s",
        "--producers",
        "2",
        "--consumers",
        "1",
        "--partitions",
        "2",
        "--record-bytes",
        "100",
    ];
    let text = ok(u, &args);
    assert!(
        text.contains("P50 MS") && text.contains("P99 MS") && text.contains("MAX MS"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("produce ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("end-to-end ")), "{text}");
    let mut json_args = args.to_vec();
    json_args.extend(["--output", "json"]);
    let o = sluice(u, &json_args, "");
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let produced = v["produce"]["records"].as_u64().unwrap();
    assert!(produced > 0, "{v}");
    assert_eq!(v["end_to_end"]["records"].as_u64(), Some(produced), "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    for q in ["p50", "p90", "p99", "max"] {
        assert!(v["produce"]["latency_ms"][q].is_f64(), "{v}");
        assert!(v["end_to_end"]["latency_ms"][q].is_f64(), "{v}");
    }
    // The bench topics are gone afterwards.
    let l: Value = serde_json::from_str(&ok(u, &["topics", "list", "--output", "json"])).unwrap();
    assert!(l["topics"].as_array().unwrap().is_empty(), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_queues_and_filters() {
    let d = dev().await;
    let u = &d.url;
    ok(u, &["topics", "create", "orders", "--partitions", "2"]);
    let o = sluice(
        u,
        &["produce", "orders", "--header", "type=created"],
        "a\nb\nc\n",
    );
    assert!(o.status.success());
    let o = sluice(u, &["produce", "orders", "--header", "type=paid"], "d\n");
    assert!(o.status.success());

    // Filters: through the gateway and straight from the bucket alike.
    let f = "type = 'paid'";
    assert_eq!(ok(u, &["consume", "orders", "--filter", f]), "d\n");
    assert_eq!(
        ok(
            u,
            &["consume", "orders", "--filter", f, "--store", &d.data()]
        ),
        "d\n"
    );
    assert!(fails(u, &["consume", "orders", "--filter", "type ="], 1).contains("(invalid_filter)"));
    let e = fails(
        u,
        &[
            "consume",
            "orders",
            "--filter",
            "type =",
            "--store",
            &d.data(),
        ],
        1,
    );
    assert!(e.contains("(invalid_filter)"), "{e}");

    // A group member reads everything once, committing as it goes; a second run finds nothing.
    let mut got: Vec<String> = ok(u, &["consume", "orders", "--group", "billing"])
        .lines()
        .map(String::from)
        .collect();
    got.sort();
    assert_eq!(got, ["a", "b", "c", "d"]);
    assert_eq!(ok(u, &["consume", "orders", "--group", "billing"]), "");
    let list: Value =
        serde_json::from_str(&ok(u, &["groups", "list", "--output", "json"])).unwrap();
    assert_eq!(list["groups"][0]["group"], "billing");
    assert_eq!(list["groups"][0]["lag"], 0);
    let desc: Value = serde_json::from_str(&ok(
        u,
        &["groups", "describe", "billing", "--output", "json"],
    ))
    .unwrap();
    let committed: u64 = desc["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed_offset"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 4, "{desc}");
    // Reset to the start: the group reads it all again (with --limit, committing only those).
    ok(
        u,
        &[
            "groups", "reset", "billing", "--topic", "orders", "--to", "earliest",
        ],
    );
    assert_eq!(
        ok(
            u,
            &["consume", "orders", "--group", "billing", "--limit", "3"]
        )
        .lines()
        .count(),
        3
    );
    assert_eq!(
        ok(u, &["consume", "orders", "--group", "billing"])
            .lines()
            .count(),
        1
    );
    fails(
        u,
        &["consume", "orders", "--group", "billing", "--from", "3"],
        2,
    );
    fails(
        u,
        &[
            "groups", "reset", "billing", "--topic", "orders", "--to", "soon",
        ],
        2,
    );
    assert!(fails(u, &["groups", "describe", "nope"], 1).contains("(group_not_found)"));

    // Queues.
    let q: Value = serde_json::from_str(&ok(
        u,
        &[
            "queues",
            "create",
            "work",
            "--topic",
            "orders",
            "--visibility-timeout",
            "30s",
            "--max-deliveries",
            "3",
            "--output",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (q["queue"].as_str(), q["max_deliveries"].as_u64()),
        (Some("work"), Some(3))
    );
    assert_eq!(q["dead_letter_topic"], "work.dlq");
    assert!(ok(u, &["queues", "list"]).starts_with("work\torders\twork.dlq"));
    let desc: Value =
        serde_json::from_str(&ok(u, &["queues", "describe", "work", "--output", "json"])).unwrap();
    assert_eq!(desc["topic"], "orders", "{desc}");
    assert!(desc["ready"].is_u64(), "{desc}");
    assert_eq!(
        ok(u, &["queues", "redrive", "work", "--dry-run"]),
        "would redrive 0 records\n"
    );
    assert!(fails(u, &["queues", "describe", "nope"], 1).contains("(queue_not_found)"));
    fails(
        u,
        &[
            "queues",
            "create",
            "w2",
            "--topic",
            "orders",
            "--ordering",
            "random",
        ],
        2,
    );
    for args in [&["groups", "--help"][..], &["queues", "create", "--help"]] {
        assert!(sluice(u, args, "").status.success(), "{args:?}");
    }
}

/// Run `sluice ARGS` on a terminal: a pseudo-terminal from util-linux `script` (stdin, stdout and
/// stderr all on it); returns everything the terminal showed.
fn on_a_terminal(url: &str, args: &[&str]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_sluice"));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("SLUICE_URL", url)
        .env_remove("SLUICE_OUTPUT")
        .env_remove("SLUICE_TOKEN")
        .env("SLUICE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("util-linux script (gives the command a pseudo-terminal)");
    assert!(o.status.success(), "{args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_tables_on_a_terminal_plain_lines_when_piped() {
    let d = dev().await;
    let u = &d.url;
    ok(u, &["topics", "create", "tty", "--partitions", "2"]);
    let file = d.dir.path().join("lines.txt");
    let lines: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&file, &lines).unwrap();
    let file = file.display().to_string();

    // A terminal: the progress bar is drawn (on stderr), then the count.
    let shown = on_a_terminal(u, &["produce", "tty", "--file", &file]);
    assert!(shown.contains("records acked"), "{shown:?}");
    assert!(shown.contains("acked 3000 records"), "{shown:?}");
    // Piped: no bar, nothing on stderr, one plain line on stdout.
    let o = sluice(u, &["produce", "tty", "--file", &file], "");
    assert!(o.status.success(), "{o:?}");
    assert!(
        o.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "acked 3000 records\n");

    // Tables with a header row on a terminal; tab-separated lines when piped.
    let shown = on_a_terminal(u, &["topics", "list"]);
    assert!(
        shown.contains("NAME") && shown.contains("PARTITIONS"),
        "{shown:?}"
    );
    let piped = ok(u, &["topics", "list"]);
    assert!(!piped.contains("NAME"), "{piped:?}");
    assert!(
        piped.lines().any(|l| l.starts_with("tty\t2\t")),
        "{piped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_records_produced_listed_cancelled_and_delivered() {
    let d = dev().await;
    let u = &d.url;
    ok(u, &["topics", "create", "later", "--partitions", "2"]);
    // Two records an hour ahead: answered with delayed ids, not offsets.
    let o = sluice(
        u,
        &["produce", "later", "--delay", "1h", "--output", "json"],
        "a\nb\n",
    );
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["acked"], 2, "{v}");
    let first = v["first"]["delayed_id"]
        .as_str()
        .expect("a delayed id")
        .to_string();
    assert!(v["first"].get("offset").is_none(), "{v}");
    assert!(v["last"]["deliver_at_ms"].as_i64().unwrap() > 0, "{v}");
    // Listed, soonest first: one JSON document, or tab-separated lines when piped.
    let l: Value =
        serde_json::from_str(&ok(u, &["delayed", "list", "later", "--output", "json"])).unwrap();
    let ids: Vec<&str> = l["delayed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delayed_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{l}");
    assert!(ids.contains(&first.as_str()), "{l}");
    let text = ok(u, &["delayed", "list", "later", "--limit", "1"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(text.split('\t').count(), 3, "{text}");
    // Cancel once; a second time the server says no.
    assert_eq!(
        ok(u, &["delayed", "cancel", "later", &first]),
        format!("cancelled {first}\n")
    );
    assert!(fails(u, &["delayed", "cancel", "later", &first], 1).contains("(delayed_not_found)"));
    // Bad delays: past 365 days the server refuses (1); not a duration, or both flags (2).
    let o = sluice(u, &["produce", "later", "--delay", "400d"], "x\n");
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("(invalid_request)"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    fails(u, &["produce", "later", "--delay", "soon"], 2);
    fails(
        u,
        &["produce", "later", "--delay", "1s", "--deliver-at", "5"],
        2,
    );
    fails(u, &["delayed", "list"], 2);
    // Due soon: the mover of `sluice dev` delivers it; the hour-ahead record stays out.
    let o = sluice(u, &["produce", "later", "--delay", "300ms"], "soon\n");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "acked 1 delayed records (sluice delayed list later)\n"
    );
    let child = command(
        u,
        &[
            "consume", "later", "--follow", "--limit", "1", "--output", "json",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("the delayed record is delivered")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["value"], "soon");
    let o = sluice(u, &["delayed", "--help"], "");
    assert!(String::from_utf8(o.stdout).unwrap().contains("Usage"));
}

#[tokio::test]
async fn transactions_listed_described_committed_and_rolled_back() {
    let d = dev().await;
    let u = &d.url;
    ok(u, &["topics", "create", "ledger", "--partitions", "1"]);
    assert_eq!(ok(u, &["transactions", "list"]), "");
    // Two transactions begun and staged over REST (the CLI has no staging command).
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in [2, 1] {
        let (status, t) = send(
            http.post(format!("{u}/v1/transactions"))
                .json(&serde_json::json!({"timeout_ms": 600000})),
        )
        .await;
        assert_eq!(status, 201, "{t}");
        let id = t["transaction_id"].as_str().unwrap().to_string();
        let records: Vec<Value> = (0..n)
            .map(|i| serde_json::json!({"value": format!("v{i}")}))
            .collect();
        let (status, v) = send(
            http.post(format!("{u}/v1/topics/ledger/records?transaction={id}"))
                .json(&serde_json::json!({ "records": records })),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Piped: tab-separated lines, oldest first; JSON: the API's document.
    let text = ok(u, &["transactions", "list"]);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        rows.iter().map(|r| (r[0], r[1], r[2])).collect::<Vec<_>>(),
        [
            (ids[0].as_str(), "open", "2"),
            (ids[1].as_str(), "open", "1")
        ],
        "{text}"
    );
    let l: Value = serde_json::from_str(&ok(
        u,
        &["transactions", "list", "--limit", "1", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(l["transactions"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l["transactions"][0]["transaction_id"], ids[0].as_str());
    // Decide both by hand; the list empties, describe tells how each ended.
    assert_eq!(
        ok(u, &["transactions", "commit", &ids[0]]),
        format!("committed {}: 2 records readable\n", ids[0])
    );
    assert_eq!(
        ok(u, &["transactions", "rollback", &ids[1]]),
        format!("rolled back {}\n", ids[1])
    );
    assert_eq!(ok(u, &["transactions", "list"]), "");
    let t: Value = serde_json::from_str(&ok(
        u,
        &["transactions", "describe", &ids[1], "--output", "json"],
    ))
    .unwrap();
    assert_eq!(t["state"], "rolled_back", "{t}");
    // The server's refusals exit 1 with their code; a missing argument is a usage error (2).
    assert!(fails(u, &["transactions", "commit", &ids[1]], 1).contains("(transaction_closed)"));
    assert!(fails(
        u,
        &["transactions", "describe", "01JDC0000000000000000000AA"],
        1
    )
    .contains("(transaction_not_found)"));
    assert!(fails(u, &["transactions", "list", "--limit", "0"], 1).contains("(invalid_request)"));
    fails(u, &["transactions", "commit"], 2);
}
