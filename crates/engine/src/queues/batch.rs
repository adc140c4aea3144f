//! The pure decisions of a mapping's delivery, kept apart from I/O so they are tested alone:
//! reading a function's answer (partial batch failures), bisecting a failing batch, cutting a
//! batch to the payload limit, and the MD5 of a body.

use std::collections::HashSet;
use std::future::Future;

/// What one invocation with a batch came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every record succeeded.
    Success,
    /// Only these message ids failed (the function's `batchItemFailures`).
    Partial(Vec<String>),
    /// The whole batch failed, for this reason.
    Failed(String),
}

/// Why a record listed in `batchItemFailures` is retried.
pub const REPORTED_FAILURE: &str = "reported in batchItemFailures";

/// Reads the answer of a function that completed with a batch of `ids`.
///
/// As Lambda's `ReportBatchItemFailures`: `{"batchItemFailures":[{"itemIdentifier":ID}]}`
/// fails only those records; an empty or null list, or an answer that is not such an object
/// at all, is a complete success. An item that is not an id of the batch (missing, empty,
/// unknown) fails the whole batch, since the function's intent cannot be read.
pub fn read_response(body: &[u8], ids: &[&str]) -> Verdict {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Verdict::Success;
    };
    let Some(failures) = value.get("batchItemFailures") else {
        return Verdict::Success;
    };
    let items = match failures {
        serde_json::Value::Null => return Verdict::Success,
        serde_json::Value::Array(items) => items,
        _ => return Verdict::Failed("batchItemFailures is not a list".to_owned()),
    };
    let known: HashSet<&str> = ids.iter().copied().collect();
    let mut failed = Vec::new();
    for item in items {
        match item.get("itemIdentifier").and_then(|v| v.as_str()) {
            Some(id) if known.contains(id) => {
                if !failed.iter().any(|f| f == id) {
                    failed.push(id.to_owned());
                }
            }
            Some(id) => {
                return Verdict::Failed(format!(
                    "batchItemFailures names {id:?}, which is not a message of the batch"
                ))
            }
            None => {
                return Verdict::Failed(
                    "batchItemFailures has an item without a string itemIdentifier".to_owned(),
                )
            }
        }
    }
    if failed.is_empty() {
        Verdict::Success
    } else {
        Verdict::Partial(failed)
    }
}

/// Runs `invoke` on `records` and returns the records that failed, each with its reason.
///
/// When the whole batch fails and `bisect` is set, the batch is split in halves and each half
/// is invoked on its own (first half first), recursively, so that one poison record ends up
/// failing alone while the records beside it succeed. A partial failure is never bisected:
/// the function already said which records failed.
pub async fn run_bisecting<R, F, Fut>(
    records: Vec<R>,
    bisect: bool,
    id: impl Fn(&R) -> &str,
    mut invoke: F,
) -> Vec<(R, String)>
where
    F: FnMut(Vec<R>) -> Fut,
    Fut: Future<Output = Verdict>,
    R: Clone,
{
    let mut failed = Vec::new();
    let mut pending = vec![records];
    while let Some(chunk) = pending.pop() {
        if chunk.is_empty() {
            continue;
        }
        match invoke(chunk.clone()).await {
            Verdict::Success => {}
            Verdict::Partial(ids) => failed.extend(
                chunk
                    .into_iter()
                    .filter(|r| ids.iter().any(|i| i == id(r)))
                    .map(|r| (r, REPORTED_FAILURE.to_owned())),
            ),
            Verdict::Failed(reason) if bisect && chunk.len() > 1 => {
                let (first, second) = halves(chunk);
                // A stack: the first half is taken next.
                pending.push(second);
                pending.push(first);
                tracing::debug!(reason = %reason, "batch failed; bisecting");
            }
            Verdict::Failed(reason) => {
                failed.extend(chunk.into_iter().map(|r| (r, reason.clone())));
            }
        }
    }
    failed
}

/// Splits a batch in two; the first half gets the extra record of an odd batch.
pub fn halves<R>(mut records: Vec<R>) -> (Vec<R>, Vec<R>) {
    let second = records.split_off(records.len().div_ceil(2));
    (records, second)
}

/// Cuts a batch, in order, into runs whose sizes add up to at most `limit` each (a record
/// larger than `limit` alone makes a run of one).
pub fn chunks_within(sizes: &[usize], limit: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && total + size > limit {
            out.push(start..i);
            start = i;
            total = 0;
        }
        total += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Hex MD5 of `data`: SQS's `md5OfBody`, which clients use to check what they received.
pub fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in message.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(K[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    state
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn md5_matches_the_reference_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"a"), "0cc175b9c0f1b6a831c399e269772661");
        assert_eq!(
            md5_hex(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        assert_eq!(
            md5_hex(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn responses() {
        let ids = ["a", "b", "c"];
        assert_eq!(read_response(b"null", &ids), Verdict::Success);
        assert_eq!(read_response(b"", &ids), Verdict::Success);
        assert_eq!(read_response(br#""done""#, &ids), Verdict::Success);
        assert_eq!(read_response(br#"{"ok":1}"#, &ids), Verdict::Success);
        assert_eq!(
            read_response(br#"{"batchItemFailures":[]}"#, &ids),
            Verdict::Success
        );
        assert_eq!(
            read_response(br#"{"batchItemFailures":null}"#, &ids),
            Verdict::Success
        );
        assert_eq!(
            read_response(
                br#"{"batchItemFailures":[{"itemIdentifier":"b"},{"itemIdentifier":"b"}]}"#,
                &ids
            ),
            Verdict::Partial(vec!["b".into()])
        );
        for bad in [
            &br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#[..],
            br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            br#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            br#"{"batchItemFailures":[{"id":"a"}]}"#,
            br#"{"batchItemFailures":"a"}"#,
        ] {
            assert!(
                matches!(read_response(bad, &ids), Verdict::Failed(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn halves_and_chunks() {
        assert_eq!(halves(vec![1, 2, 3]), (vec![1, 2], vec![3]));
        assert_eq!(halves(vec![1, 2, 3, 4]), (vec![1, 2], vec![3, 4]));
        assert_eq!(halves(vec![1]), (vec![1], vec![]));
        assert_eq!(chunks_within(&[4, 4, 4], 8), vec![0..2, 2..3]);
        assert_eq!(chunks_within(&[10, 1], 8), vec![0..1, 1..2]);
        assert_eq!(chunks_within(&[], 8), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(chunks_within(&[1, 1, 1], 8), vec![0..3]);
    }

    /// A fake function: fails the whole batch when it holds a poison record, or reports the
    /// `flaky` ones as partial failures; records every batch it was given.
    async fn drive(
        records: Vec<&'static str>,
        bisect: bool,
    ) -> (Vec<String>, Vec<Vec<&'static str>>) {
        let calls = Mutex::new(Vec::new());
        let failed = run_bisecting(
            records,
            bisect,
            |r| r,
            |batch: Vec<&'static str>| {
                calls.lock().unwrap().push(batch.clone());
                async move {
                    if batch.iter().any(|r| r.starts_with("poison")) {
                        Verdict::Failed("boom".into())
                    } else {
                        let flaky: Vec<String> = batch
                            .iter()
                            .filter(|r| r.starts_with("flaky"))
                            .map(|r| r.to_string())
                            .collect();
                        if flaky.is_empty() {
                            Verdict::Success
                        } else {
                            Verdict::Partial(flaky)
                        }
                    }
                }
            },
        )
        .await;
        let failed = failed.into_iter().map(|(r, _)| r.to_owned()).collect();
        (failed, calls.into_inner().unwrap())
    }

    #[tokio::test]
    async fn bisect_isolates_the_poison_record() {
        let (failed, calls) = drive(vec!["a", "b", "poison", "c", "d", "e"], true).await;
        assert_eq!(failed, vec!["poison"]);
        // [a b poison c d e] → [a b poison] → [a b] ok, [poison] fails; [c d e] ok.
        assert_eq!(
            calls,
            vec![
                vec!["a", "b", "poison", "c", "d", "e"],
                vec!["a", "b", "poison"],
                vec!["a", "b"],
                vec!["poison"],
                vec!["c", "d", "e"],
            ]
        );
    }

    #[tokio::test]
    async fn without_bisect_the_whole_batch_fails() {
        let (failed, calls) = drive(vec!["a", "poison", "b"], false).await;
        assert_eq!(failed, vec!["a", "poison", "b"]);
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test]
    async fn partial_failures_are_not_bisected() {
        let (failed, calls) = drive(vec!["a", "flaky1", "b", "flaky2"], true).await;
        assert_eq!(failed, vec!["flaky1", "flaky2"]);
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test]
    async fn two_poison_records_both_isolated() {
        let (mut failed, _) = drive(vec!["poison1", "a", "b", "c", "poison2"], true).await;
        failed.sort();
        assert_eq!(failed, vec!["poison1", "poison2"]);
    }
}
