//! Which partition a record goes to, and which offsets a produce request got. Pure functions.

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), so a key lands on the partition a Kafka
/// producer with the default partitioner would choose for the same partition count.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Partition of a keyed record: `(murmur2(key) & 0x7fffffff) % partitions`.
pub fn for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32) % partitions.max(1)
}

/// A record's routing as the producer asked for it.
#[derive(Clone, Copy, Debug)]
pub enum Route<'a> {
    Explicit(u32),
    Key(&'a [u8]),
    Any,
}

/// Assign every record of one request a partition. Records without key or partition all go to
/// one partition: `hash(dedup_key)` when the request has an idempotency key (so a retry lands the
/// same), else `sticky`. Errors name the first out-of-range explicit partition.
pub fn assign(
    routes: &[Route<'_>],
    partitions: u32,
    dedup_key: Option<&[u8]>,
    sticky: u32,
) -> Result<Vec<u32>, u32> {
    let any = match dedup_key {
        Some(k) => for_key(k, partitions),
        None => sticky % partitions.max(1),
    };
    routes
        .iter()
        .map(|r| match *r {
            Route::Explicit(p) if p < partitions => Ok(p),
            Route::Explicit(p) => Err(p),
            Route::Key(k) => Ok(for_key(k, partitions)),
            Route::Any => Ok(any),
        })
        .collect()
}

/// Offsets in request order, given each record's partition and the (partition, base, count) of
/// the batches the request committed as. `None` if the batches do not fit the assignment (the
/// idempotency key was reused for a different request).
pub fn offsets_in_request_order(
    assignment: &[u32],
    batches: &[(u32, u64, u32)],
) -> Option<Vec<(u32, u64)>> {
    let mut cursor: std::collections::HashMap<u32, (u64, u64)> = batches
        .iter()
        .map(|&(p, base, n)| (p, (base, base + n as u64)))
        .collect();
    if cursor.len() != batches.len() {
        return None;
    }
    let mut out = Vec::with_capacity(assignment.len());
    for &p in assignment {
        let (next, end) = cursor.get_mut(&p)?;
        if *next >= *end {
            return None;
        }
        out.push((p, *next));
        *next += 1;
    }
    cursor.values().all(|(n, e)| n == e).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        let cases: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (s, want) in cases {
            assert_eq!(murmur2(s.as_bytes()), want, "{s}");
        }
    }

    #[test]
    fn assignment_is_stable_and_checked() {
        let routes = [
            Route::Key(b"user-7"),
            Route::Any,
            Route::Explicit(2),
            Route::Any,
        ];
        let a = assign(&routes, 4, Some(b"req-1"), 0).unwrap();
        assert_eq!(a, assign(&routes, 4, Some(b"req-1"), 3).unwrap());
        assert_eq!(a[1], a[3]);
        assert_eq!(a[2], 2);
        assert_eq!(assign(&[Route::Explicit(4)], 4, None, 0), Err(4));
    }

    #[test]
    fn request_order_offsets() {
        let assignment = [1, 0, 1, 1];
        let got = offsets_in_request_order(&assignment, &[(1, 10, 3), (0, 5, 1)]).unwrap();
        assert_eq!(got, vec![(1, 10), (0, 5), (1, 11), (1, 12)]);
        assert!(offsets_in_request_order(&assignment, &[(1, 10, 2), (0, 5, 1)]).is_none());
        assert!(offsets_in_request_order(&assignment, &[(1, 10, 4), (0, 5, 1)]).is_none());
    }
}
