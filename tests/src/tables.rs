//! Reading a topic's Parquet table back the way a DuckDB user does: every `*.parquet` object
//! under `tables/{topic}/` at any depth (`read_parquet('…/tables/{topic}/**/*.parquet')`).

use arrow_array::{Array, BinaryArray, Int32Array, Int64Array, MapArray, StringArray};
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice_core::keys;
use sluice_core::store::{self, DynStore};
use sluice_tables::manifest::Manifest;
use std::collections::BTreeMap;

/// One row of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// The paths a `tables/{topic}/**/*.parquet` glob matches now, sorted.
pub async fn glob(store: &DynStore, topic: &str) -> Vec<Path> {
    use futures::TryStreamExt;
    let dir = Path::from(format!("{}/{topic}", keys::TABLES));
    let mut paths: Vec<Path> = store
        .list(Some(&dir))
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await
        .expect("list table")
        .into_iter()
        .filter(|p| p.as_ref().ends_with(".parquet"))
        .collect();
    paths.sort();
    paths
}

/// Rows of one Parquet file. `None` if it vanished between the listing and the GET.
pub async fn read_file(store: &DynStore, path: &Path) -> Option<Vec<Row>> {
    let bytes = store::get_opt(&**store, path).await.expect("get")?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet footer")
        .build()
        .expect("parquet reader");
    let mut rows = Vec::new();
    for batch in reader {
        let b = batch.expect("parquet batch");
        let col = |name: &str| b.column_by_name(name).unwrap_or_else(|| panic!("{name}"));
        let partition = col("partition")
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap();
        let offset = col("offset").as_any().downcast_ref::<Int64Array>().unwrap();
        let ts = col("timestamp")
            .as_any()
            .downcast_ref::<arrow_array::TimestampMillisecondArray>()
            .unwrap();
        let key = col("key").as_any().downcast_ref::<BinaryArray>().unwrap();
        let value = col("value").as_any().downcast_ref::<BinaryArray>().unwrap();
        let headers = col("headers").as_any().downcast_ref::<MapArray>().unwrap();
        for i in 0..b.num_rows() {
            let h = headers.value(i);
            let names = h.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let values = h.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            rows.push(Row {
                partition: partition.value(i) as u32,
                offset: offset.value(i) as u64,
                timestamp_ms: ts.value(i),
                key: (!key.is_null(i)).then(|| key.value(i).to_vec()),
                value: value.value(i).to_vec(),
                headers: (0..names.len())
                    .map(|j| (names.value(j).to_string(), values.value(j).to_string()))
                    .collect(),
            });
        }
    }
    Some(rows)
}

/// Every row the glob sees, with the file it came from.
pub async fn read_glob(store: &DynStore, topic: &str) -> Vec<(Path, Row)> {
    let mut out = Vec::new();
    for path in glob(store, topic).await {
        for row in read_file(store, &path).await.unwrap_or_default() {
            out.push((path.clone(), row));
        }
    }
    out
}

/// The newest manifest of a topic's table.
pub async fn manifest(store: &DynStore, topic: &str) -> Option<Manifest> {
    let names = store::list_names(&**store, &keys::table_manifest_dir(topic), None)
        .await
        .expect("list manifests");
    let v = names
        .iter()
        .rev()
        .find_map(|n| keys::parse_table_manifest(n))?;
    let bytes = store::get_opt(&**store, &keys::table_manifest(topic, v))
        .await
        .expect("get manifest")?;
    Some(Manifest::decode(&bytes).expect("manifest decodes"))
}
