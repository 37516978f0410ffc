//! Everything Sluice stores goes through `Arc<dyn ObjectStore>` (object_store crate). This
//! module opens stores from URLs and holds the few helpers every component uses: create-only
//! put, get-or-none, sorted listing. Compare-and-swap is always a create-only write of the next
//! numbered key, which `InMemory`, `LocalFileSystem` and S3 all support.

mod instrumented;
mod observed;

pub use instrumented::{Counts, FaultConfig, Instrumented, LatencyDist};
pub use observed::{outcome, CallLabels, Observed};

use crate::error::{Error, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectMeta;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

pub type DynStore = Arc<dyn ObjectStore>;

/// How [`open`] sets up a store. S3 credentials and region come from the usual AWS environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:4566` for LocalStack; `None` for AWS.
    pub endpoint: Option<String>,
    /// Local folders only: fsync each written object and its directory before a write counts
    /// as done, so an acknowledged record survives an OS crash or power loss, as on S3
    /// (default `true`). `false` is for throwaway data: a kill -9 of the process still loses
    /// nothing (the page cache survives it), a crash of the machine may.
    pub fsync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            fsync: true,
        }
    }
}

/// Open a store from a URL: `memory://`, `file:///abs/dir` (or a plain directory path), or
/// `s3://bucket[/prefix]`.
///
/// # Durability on a local folder
///
/// With [`StoreOptions::fsync`] (the default) object_store's `LocalFileSystem` writes each
/// object to a staging file, `fsync`s it, hard-links it to its key (create-only) and `fsync`s
/// the key's directory (and every directory it had to create) before the put returns: an
/// acknowledged segment or journal entry is on disk. Batching keeps the cost small: one flush
/// of many produce requests is one segment and one journal entry, i.e. four syncs.
///
/// # Retries on S3
///
/// The S3 client retries by itself, with exponential backoff and jitter ("decorrelated
/// jitter": each pause is random between 50 ms and twice the previous one, at most 5 s): every
/// 5xx answer (among them `503 SlowDown`, S3's throttling, and, for the calls where S3 can
/// send it, a 200 whose body carries `SlowDown`/`InternalError`), 429, 408, and transport errors
/// where the request was never sent (time-outs too, for idempotent calls). It stops after 10 retries or 30 s from the first attempt, whichever comes first, and
/// then returns the error. 30 s keeps a throttled call well inside the commit protocol's time
/// bounds (a segment older than the 2-minute commit deadline is never committed; journal
/// entries are truncated only after 15 minutes) and bounds how long an HTTP producer waits.
///
/// How this fits with the commit protocol and idempotent producers:
/// - A create-only PUT (`If-None-Match: *`) that is retried after a 5xx may find the key taken
///   by its own first attempt, which did land: it answers "already exists" (412), and the
///   committer then GETs the key and recognises its own bytes (see [`put_create_claim`]).
/// - A create-only PUT that times out after it was sent is *not* retried here (its outcome is
///   unknown and it is not idempotent); the error reaches the committer, which GETs the key to
///   learn whether it landed before planning again.
/// - When retries run out, the produce request fails with 503 `unavailable` and `Retry-After`;
///   a client that retries with the same `Idempotency-Key` gets the first answer if the commit
///   did land after all, and its records are never written twice within the dedup window.
pub fn open(url: &str, opts: &StoreOptions) -> Result<DynStore> {
    let invalid = |m: String| Error::Invalid(m);
    if url == "memory://" || url == "memory:" {
        return Ok(Arc::new(object_store::memory::InMemory::new()));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(format!("{url}: missing bucket name")));
        }
        let retry = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: std::time::Duration::from_millis(50),
                max_backoff: std::time::Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 10,
            retry_timeout: std::time::Duration::from_secs(30),
        };
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry);
        if let Some(ep) = &opts.endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        let store = b.build().map_err(|e| invalid(format!("{url}: {e}")))?;
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        });
    }
    let dir = url.strip_prefix("file://").unwrap_or(url);
    if dir.is_empty() || dir.contains("://") {
        return Err(invalid(format!(
            "unsupported store URL {url:?}: use memory://, file:///dir or s3://bucket/prefix"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| invalid(format!("cannot create {dir}: {e}")))?;
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| invalid(format!("{dir}: {e}")))?
        .with_fsync(opts.fsync);
    Ok(Arc::new(fs))
}

/// Result of a create-only put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Yes,
    /// Something was already at the key (maybe our own earlier write whose answer was lost).
    AlreadyExists,
}

pub async fn put_create(
    store: &dyn ObjectStore,
    key: &Path,
    payload: impl Into<PutPayload>,
) -> Result<Created> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(key, payload.into(), opts).await {
        Ok(_) => Ok(Created::Yes),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
        // Some servers answer a lost If-None-Match race with 409 instead of 412.
        Err(object_store::Error::Precondition { .. }) => Ok(Created::AlreadyExists),
        Err(e) => Err(Error::store("put", key, e)),
    }
}

/// What a create-only PUT of a writer's own entry (the next numbered key of a journal or a
/// state log) came to, with the key looked at again when the answer was not a plain success.
#[derive(Debug)]
pub enum Claim {
    /// The key holds our bytes. `error`: the PUT answered this error although they are there —
    /// its answer was lost, or on a local folder the directory fsync after the link failed
    /// (visible, maybe not durable) — so what the entry commits is answered with it, never
    /// acked. `None`: created.
    Ours { error: Option<Error> },
    /// Not ours: another writer's bytes are there (`error` None: the race was lost), or nothing
    /// is and the PUT failed (`error` Some).
    Lost { error: Option<Error> },
}

/// Create `key` with `bytes`; when the answer is "already exists" or an error, GET the key and
/// compare, so that our own earlier write whose answer was lost is recognised as ours.
pub async fn put_create_claim(store: &dyn ObjectStore, key: &Path, bytes: Bytes) -> Result<Claim> {
    let outcome = put_create(store, key, bytes.clone()).await;
    if matches!(outcome, Ok(Created::Yes)) {
        return Ok(Claim::Ours { error: None });
    }
    let ours = get_opt(store, key)
        .await?
        .is_some_and(|found| found == bytes);
    let error = outcome.err();
    Ok(if ours {
        Claim::Ours { error }
    } else {
        Claim::Lost { error }
    })
}

/// A create-only PUT of a deterministic output (the same bytes whoever writes it, e.g. the
/// compactor's data, index and checkpoint objects): done once created, or once something is
/// at the key — which a HEAD confirms. "Already exists" is not taken on faith before work that
/// depends on the object goes on (a checkpoint past records whose index object is not there
/// loses them): a store or proxy answering 412/409 with nothing at the key is an error here.
pub async fn put_create_output(
    store: &dyn ObjectStore,
    key: &Path,
    payload: impl Into<PutPayload>,
) -> Result<()> {
    match put_create(store, key, payload).await? {
        Created::Yes => Ok(()),
        Created::AlreadyExists => store
            .head(key)
            .await
            .map(|_| ())
            .map_err(|e| Error::store("head", key, e)),
    }
}

/// A plain PUT that replaces what is at `key`: only for hints that readers verify or can do
/// without (the checkpoint pointer), never for a compare-and-swap.
pub async fn put_overwrite(
    store: &dyn ObjectStore,
    key: &Path,
    payload: impl Into<PutPayload>,
) -> Result<()> {
    store
        .put_opts(key, payload.into(), PutOptions::default())
        .await
        .map(|_| ())
        .map_err(|e| Error::store("put", key, e))
}

/// GET a whole object; `None` if it does not exist.
pub async fn get_opt(store: &dyn ObjectStore, key: &Path) -> Result<Option<Bytes>> {
    match store.get(key).await {
        Ok(r) => r
            .bytes()
            .await
            .map(Some)
            .map_err(|e| Error::store("get", key, e)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store("get", key, e)),
    }
}

pub async fn get_range(store: &dyn ObjectStore, key: &Path, range: Range<u64>) -> Result<Bytes> {
    store
        .get_range(key, range)
        .await
        .map_err(|e| Error::store("get", key, e))
}

pub fn is_not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::Store {
            source: object_store::Error::NotFound { .. },
            ..
        }
    )
}

/// Names (last path segment) of the objects directly under `dir`, sorted, optionally only those
/// after `after`.
pub async fn list_names(
    store: &dyn ObjectStore,
    dir: &Path,
    after: Option<&str>,
) -> Result<Vec<String>> {
    let stream = match after {
        Some(a) => store.list_with_offset(Some(dir), &dir.clone().join(a)),
        None => store.list(Some(dir)),
    };
    let metas: Vec<_> = stream
        .try_collect()
        .await
        .map_err(|e| Error::store("list", dir, e))?;
    let depth = dir.parts().count() + 1;
    let mut names: Vec<String> = metas
        .into_iter()
        .filter(|m| m.location.parts().count() == depth)
        .filter_map(|m| m.location.filename().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Ranged GETs, grouped per object: one `get_ranges` per object for all the ranges wanted of
/// it (object_store coalesces nearby ranges into few requests), objects in the order first
/// named, `concurrency` at once. Each range is answered with its tag.
pub async fn get_ranges_tagged<T: Send + 'static>(
    store: &DynStore,
    wanted: Vec<(Path, T, Range<u64>)>,
    concurrency: usize,
) -> Result<Vec<(T, Bytes)>> {
    let mut per_object: Vec<(Path, Vec<T>, Vec<Range<u64>>)> = Vec::new();
    let mut at: HashMap<Path, usize> = HashMap::new();
    for (key, tag, range) in wanted {
        let k = *at.entry(key.clone()).or_insert_with(|| {
            per_object.push((key, Vec::new(), Vec::new()));
            per_object.len() - 1
        });
        per_object[k].1.push(tag);
        per_object[k].2.push(range);
    }
    let store = store.clone();
    let fetched: Vec<Vec<(T, Bytes)>> = futures::stream::iter(per_object)
        .map(move |(key, tags, ranges)| {
            let store = store.clone();
            async move {
                let got = store
                    .get_ranges(&key, &ranges)
                    .await
                    .map_err(|e| Error::store("get", &key, e))?;
                Ok::<_, Error>(tags.into_iter().zip(got).collect())
            }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(fetched.into_iter().flatten().collect())
}

/// Every object under `prefix`, at any depth (one listing, paged by the store).
pub async fn list_under(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>> {
    store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store("list", prefix, e))
}

/// Names of the "directories" directly under `dir`, sorted.
pub async fn list_dirs(store: &dyn ObjectStore, dir: &Path) -> Result<Vec<String>> {
    let r = store
        .list_with_delimiter(Some(dir))
        .await
        .map_err(|e| Error::store("list", dir, e))?;
    let mut names: Vec<String> = r
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

pub async fn delete(store: &dyn ObjectStore, key: &Path) -> Result<()> {
    match store.delete(key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store("delete", key, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_only_on_memory_and_local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let stores = [
            open("memory://", &StoreOptions::default()).unwrap(),
            open(dir.path().to_str().unwrap(), &StoreOptions::default()).unwrap(),
        ];
        for s in stores {
            let k = Path::from("journal/00000/00000000000000000001");
            assert_eq!(
                put_create(&*s, &k, Bytes::from("a")).await.unwrap(),
                Created::Yes
            );
            assert_eq!(
                put_create(&*s, &k, Bytes::from("b")).await.unwrap(),
                Created::AlreadyExists
            );
            assert_eq!(get_opt(&*s, &k).await.unwrap().unwrap(), Bytes::from("a"));
            let names = list_names(&*s, &Path::from("journal/00000"), None)
                .await
                .unwrap();
            assert_eq!(names, vec!["00000000000000000001"]);
            assert_eq!(
                list_dirs(&*s, &Path::from("journal")).await.unwrap(),
                vec!["00000"]
            );
            assert!(get_opt(&*s, &Path::from("nope")).await.unwrap().is_none());
        }
        assert!(open("ftp://x", &StoreOptions::default()).is_err());
    }

    #[tokio::test]
    async fn a_claim_recognises_our_bytes_and_the_error_they_came_with() {
        use crate::store::{FaultConfig, Instrumented};
        let mem = open("memory://", &Default::default()).unwrap();
        let key = Path::from("journal/00000/1");
        let ours = Bytes::from_static(b"ours");
        let claim = put_create_claim(&*mem, &key, ours.clone()).await.unwrap();
        assert!(matches!(claim, Claim::Ours { error: None }), "{claim:?}");
        // Our first attempt landed, its answer was lost: the retry recognises it.
        let again = put_create_claim(&*mem, &key, ours).await.unwrap();
        assert!(matches!(again, Claim::Ours { error: None }), "{again:?}");
        // Another writer's bytes: lost, no error.
        let theirs = put_create_claim(&*mem, &key, Bytes::from_static(b"theirs"))
            .await
            .unwrap();
        assert!(matches!(theirs, Claim::Lost { error: None }), "{theirs:?}");
        // The PUT lands but answers an error: ours, with the error.
        let faulty = Instrumented::new(mem.clone(), 1);
        faulty.set_faults(FaultConfig {
            lost_reply_rate: 1.0,
            ..Default::default()
        });
        let key2 = Path::from("journal/00000/2");
        let landed = put_create_claim(&*faulty, &key2, Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert!(
            matches!(landed, Claim::Ours { error: Some(_) }),
            "{landed:?}"
        );
        // Every call fails (the look after the PUT too): nothing is claimed, the error is
        // the caller's.
        faulty.set_faults(FaultConfig {
            error_rate: 1.0,
            ..Default::default()
        });
        let failed = put_create_claim(&*faulty, &Path::from("journal/00000/3"), Bytes::new()).await;
        assert!(failed.is_err(), "{failed:?}");
    }
}
