//! Shared test harness: the store backends every log test runs on, and the history checker
//! that asserts the invariants I1–I5 over what writers were acked and what readers got back.

pub mod checker;
pub mod http;
pub mod tables;
pub mod txn;

use sluice_core::store::{self, DynStore, StoreOptions};
use std::path::PathBuf;

/// A bucket (or folder) that several independent clients can open.
#[derive(Clone, Debug)]
pub enum Backend {
    Memory(DynStore),
    Local(PathBuf),
    S3 { url: String, endpoint: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Local(_) => "local",
            Backend::S3 { .. } => "s3",
        }
    }

    /// A new, independent client of the same bucket (the in-memory store can only be shared).
    pub fn client(&self) -> DynStore {
        match self {
            Backend::Memory(s) => s.clone(),
            Backend::Local(dir) => {
                store::open(dir.to_str().expect("utf-8 path"), &StoreOptions::default())
                    .expect("open local store")
            }
            Backend::S3 { url, endpoint } => store::open(
                url,
                &StoreOptions {
                    endpoint: Some(endpoint.clone()),
                    ..Default::default()
                },
            )
            .expect("open s3 store"),
        }
    }

    /// The URL a `sluice` process would be given for this backend.
    pub fn url(&self) -> String {
        match self {
            Backend::Memory(_) => "memory://".into(),
            Backend::Local(dir) => dir.display().to_string(),
            Backend::S3 { url, .. } => url.clone(),
        }
    }
}

/// The S3 endpoint and bucket of the test run, from `SLUICE_TEST_S3_ENDPOINT` and
/// `SLUICE_TEST_S3_BUCKET`. With `SLUICE_REQUIRE_S3=1` (set by `scripts/test.sh`) a missing
/// endpoint is a failure, never a silent skip.
pub fn s3_backend(test: &str) -> Option<Backend> {
    match std::env::var("SLUICE_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let bucket =
                std::env::var("SLUICE_TEST_S3_BUCKET").unwrap_or_else(|_| "sluice-test".into());
            let run = sluice_core::ids::new_ulid(now_ms());
            Some(Backend::S3 {
                url: format!("s3://{bucket}/{test}-{run}"),
                endpoint,
            })
        }
        _ => {
            assert!(
                std::env::var("SLUICE_REQUIRE_S3").as_deref() != Ok("1"),
                "SLUICE_REQUIRE_S3=1 but SLUICE_TEST_S3_ENDPOINT is not set: start LocalStack (scripts/test.sh does)"
            );
            eprintln!("note: SLUICE_TEST_S3_ENDPOINT not set; {test} runs without the S3 backend");
            None
        }
    }
}

/// Every backend a log test runs on: in-memory, a local folder and (when configured) S3.
pub fn backends(test: &str) -> (Vec<Backend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut v = vec![
        Backend::Memory(store::open("memory://", &StoreOptions::default()).expect("memory")),
        Backend::Local(dir.path().join("bucket")),
    ];
    v.extend(s3_backend(test));
    (v, dir)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A small seeded random generator (splitmix64) so workloads are reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Read every partition of every listed topic back from offset `earliest` to the end, into
/// `history.read`, recording read errors instead of panicking.
pub async fn read_back(
    log: &sluice_core::log::Log,
    topics: &[&str],
    history: &mut checker::History,
) {
    for name in topics {
        let topic = log.topics().get(name).await.expect("topic exists");
        for p in 0..topic.partitions {
            let info = match log.partition_info(&topic, p).await {
                Ok(i) => i,
                Err(e) => {
                    history.read_errors.push(format!("{name}/{p} info: {e}"));
                    continue;
                }
            };
            history
                .earliest
                .insert((name.to_string(), p), info.earliest_offset);
            let out = history.read.entry((name.to_string(), p)).or_default();
            let mut at = info.earliest_offset;
            while at < info.next_offset {
                match log.read(&topic, p, at, 1000, 4 << 20).await {
                    Ok(b) if b.records.is_empty() => {
                        history.read_errors.push(format!(
                            "{name}/{p}@{at}: empty read before the end {}",
                            info.next_offset
                        ));
                        break;
                    }
                    Ok(b) => {
                        out.extend(
                            b.records
                                .iter()
                                .map(|r| (r.offset, r.record.value.to_vec())),
                        );
                        at = b.next_offset;
                    }
                    Err(e) => {
                        history.read_errors.push(format!("{name}/{p}@{at}: {e}"));
                        break;
                    }
                }
            }
        }
    }
}

/// Runs compactor passes until one finds nothing to fold, no table backlog and no lease to
/// wait for (bounded).
pub async fn compact_fully(c: &mut sluice_compactor::Compactor) {
    for _ in 0..200 {
        let r = c.run_once().await.expect("pass");
        if r.entries_folded == 0 && !r.waiting && !r.backlog {
            return;
        }
        if r.waiting {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    panic!("compaction did not converge");
}
