//! The table's Arrow schema and the conversion of read records into record batches (pure).
//!
//! | column | Arrow type | Parquet |
//! |---|---|---|
//! | `partition` | Int32 | INT32 |
//! | `offset` | Int64 | INT64 |
//! | `timestamp` | Timestamp(ms, "UTC") | INT64 TIMESTAMP(MILLIS, UTC-adjusted) |
//! | `key` | Binary, nullable | BYTE_ARRAY |
//! | `value` | Binary | BYTE_ARRAY |
//! | `headers` | Map<Utf8, Utf8> | MAP<STRING, STRING> |
//!
//! Header values are bytes in Sluice; the table keeps the UTF-8 ones as they are and writes any
//! other value base64-encoded (standard alphabet, the REST API's encoding for binary), so a
//! string column never holds invalid UTF-8.

use arrow_array::builder::{BinaryBuilder, MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use sluice_core::log::ReadRecord;
use std::sync::Arc;

fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

pub fn schema() -> SchemaRef {
    let entries = Field::new(
        "key_value",
        DataType::Struct(
            vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ]
            .into(),
        ),
        false,
    );
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, false),
        Field::new("headers", DataType::Map(Arc::new(entries), false), false),
    ]))
}

/// One record batch of a partition's records.
pub fn to_batch(
    schema: &SchemaRef,
    partition: u32,
    records: &[ReadRecord],
) -> Result<RecordBatch, ArrowError> {
    use base64::Engine as _;
    let n = records.len();
    let partition = i32::try_from(partition)
        .map_err(|_| ArrowError::InvalidArgumentError("partition over i32".into()))?;
    let offsets = records
        .iter()
        .map(|r| i64::try_from(r.offset))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ArrowError::InvalidArgumentError("offset over i64".into()))?;
    let ts = TimestampMillisecondArray::from_iter_values(records.iter().map(|r| r.append_ts))
        .with_timezone("UTC");
    let key: BinaryArray = records.iter().map(|r| r.record.key.as_deref()).collect();
    let mut value =
        BinaryBuilder::with_capacity(n, records.iter().map(|r| r.record.value.len()).sum());
    let mut headers = MapBuilder::new(
        Some(map_names()),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for r in records {
        value.append_value(&r.record.value);
        for (name, v) in &r.record.headers {
            headers.keys().append_value(name);
            match std::str::from_utf8(v) {
                Ok(s) => headers.values().append_value(s),
                Err(_) => headers
                    .values()
                    .append_value(base64::engine::general_purpose::STANDARD.encode(v)),
            }
        }
        headers.append(true)?;
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![partition; n])),
        Arc::new(Int64Array::from(offsets)),
        Arc::new(ts),
        Arc::new(key),
        Arc::new(value.finish()),
        Arc::new(headers.finish()),
    ];
    RecordBatch::try_new(schema.clone(), columns)
}

/// `YYYY-MM-DD` of a UTC timestamp in ms (proleptic Gregorian; Howard Hinnant's
/// days-to-civil).
pub fn utc_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use bytes::Bytes;
    use sluice_core::format::record::Record;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(86_400_000 - 1), "1970-01-01");
        assert_eq!(utc_date(86_400_000), "1970-01-02");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_764_633_600_000), "2025-12-02");
        assert_eq!(utc_date(-1), "1969-12-31");
    }

    #[test]
    fn batch_columns() {
        let mut with_headers = Record::new(None, Bytes::from_static(&[0, 159, 146, 150]));
        with_headers.headers = vec![
            ("a".into(), Bytes::from_static(b"x")),
            ("bin".into(), Bytes::from_static(&[0xff, 0])),
        ];
        let records = vec![
            ReadRecord {
                offset: 4,
                append_ts: 1000,
                record: Record::new(Some(b"k"), Bytes::from_static(b"v")),
            },
            ReadRecord {
                offset: 5,
                append_ts: 1001,
                record: with_headers,
            },
        ];
        let s = schema();
        let b = to_batch(&s, 2, &records).unwrap();
        assert_eq!(b.num_rows(), 2);
        let key = b.column(3).as_any().downcast_ref::<BinaryArray>().unwrap();
        assert_eq!(key.value(0), b"k");
        assert!(key.is_null(1));
        let map = b
            .column(5)
            .as_any()
            .downcast_ref::<arrow_array::MapArray>()
            .unwrap();
        assert_eq!(map.value_length(0), 0);
        assert_eq!(map.value_length(1), 2);
        let values = map
            .values()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap();
        assert_eq!(values.value(0), "x");
        assert_eq!(
            values.value(1),
            "/wA=",
            "non-UTF-8 header values are base64"
        );
    }
}
