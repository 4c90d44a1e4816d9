//! The on-disk layout: tree names, key encoding and checksummed value frames.
//!
//! Hosts that already run sled can read (but should not write) these trees; tests use the
//! same functions to damage stored state on purpose.
//!
//! - Keys of per-run records start with the run id and a `/`. Run ids never contain `/`, so
//!   the prefix of run `a` never matches run `ab`.
//! - Journal keys end with the record's sequence number as 8 big-endian bytes, so sled's key
//!   order is append order.
//! - Every value is a frame: a 4-byte big-endian CRC32C of the payload, then the payload.
//!   Journal and snapshot payloads start with an 8-byte big-endian sequence number.

use cairn_checkpoint::RunId;

/// Run metadata: key = run id, payload = `RunMeta` as JSON.
pub const RUNS_TREE: &str = "cairn/runs";
/// Journal records: key = run prefix + sequence, payload = sequence + `Event` as JSON.
pub const EVENTS_TREE: &str = "cairn/events";
/// Latest snapshot: key = run id, payload = first uncovered sequence + `Snapshot` as JSON.
pub const SNAPSHOTS_TREE: &str = "cairn/snapshots";
/// Audit records: key = run prefix + sequence, payload = `AuditRecord` as JSON.
pub const AUDIT_TREE: &str = "cairn/audit";
/// Quarantined run state: key = run prefix + generation (16 hex digits) + `/` + part.
pub const QUARANTINE_TREE: &str = "cairn/quarantine";
/// Torn last journal records cut by `open`: key = run prefix + sequence, value as found.
pub const CUT_TREE: &str = "cairn/cut";
/// Bookkeeping of this adapter (the token that ties factories of one process together).
pub const SESSION_TREE: &str = "cairn/session";

/// Bytes of the checksum in front of every payload.
pub const CHECKSUM_LEN: usize = 4;
/// Bytes of a sequence number.
pub const SEQ_LEN: usize = 8;

/// The prefix of every per-run key: the run id followed by `/`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::RunId;
/// use cairn_checkpoint_sled::layout::run_prefix;
/// assert_eq!(run_prefix(&RunId::new("r1")?), b"r1/".to_vec());
/// # Ok::<(), cairn_checkpoint::Error>(())
/// ```
pub fn run_prefix(run_id: &RunId) -> Vec<u8> {
    let mut key = Vec::with_capacity(run_id.as_str().len() + 1);
    key.extend_from_slice(run_id.as_str().as_bytes());
    key.push(b'/');
    key
}

/// The key of record `seq` of a run (journal, audit and cut trees).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::RunId;
/// use cairn_checkpoint_sled::layout::{run_prefix, seq_key};
///
/// let id = RunId::new("r1")?;
/// assert!(seq_key(&id, 7).starts_with(&run_prefix(&id)));
/// // Big-endian sequences sort as numbers, so sled's key order is append order.
/// assert!(seq_key(&id, 255) < seq_key(&id, 256));
/// # Ok::<(), cairn_checkpoint::Error>(())
/// ```
pub fn seq_key(run_id: &RunId, seq: u64) -> Vec<u8> {
    let mut key = run_prefix(run_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The sequence number at the end of a per-run key, or `None` when the key has the wrong
/// length for the prefix.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::RunId;
/// use cairn_checkpoint_sled::layout::{run_prefix, seq_key, seq_of_key};
///
/// let id = RunId::new("r1")?;
/// let prefix = run_prefix(&id).len();
/// assert_eq!(seq_of_key(prefix, &seq_key(&id, 256)), Some(256));
/// assert_eq!(seq_of_key(prefix, b"r1/short"), None);
/// # Ok::<(), cairn_checkpoint::Error>(())
/// ```
pub fn seq_of_key(prefix_len: usize, key: &[u8]) -> Option<u64> {
    let tail: [u8; SEQ_LEN] = key.get(prefix_len..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Frames `payload` with its CRC32C.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint_sled::layout::{seal, unseal};
/// let frame = seal(b"hello");
/// assert_eq!(unseal(&frame), Some(&b"hello"[..]));
/// ```
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(CHECKSUM_LEN + payload.len());
    frame.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The payload of a frame, or `None` when the frame is too short or its checksum is wrong.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint_sled::layout::{seal, unseal};
///
/// let mut frame = seal(b"payload");
/// assert_eq!(unseal(&frame), Some(&b"payload"[..]));
/// // One flipped bit, or a frame cut short, is caught.
/// assert_eq!(unseal(&frame[..3]), None);
/// frame[5] ^= 1;
/// assert_eq!(unseal(&frame), None);
/// ```
pub fn unseal(frame: &[u8]) -> Option<&[u8]> {
    let (crc, payload) = frame.split_at_checked(CHECKSUM_LEN)?;
    let stored = u32::from_be_bytes(crc.try_into().ok()?);
    (crc32c::crc32c(payload) == stored).then_some(payload)
}

/// Frames a payload that starts with a sequence number (journal records and snapshots).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint_sled::layout::{SEQ_LEN, seal_with_seq, unseal};
///
/// let frame = seal_with_seq(42, b"{}");
/// let payload = unseal(&frame).expect("intact");
/// assert_eq!(payload[..SEQ_LEN], 42u64.to_be_bytes());
/// assert_eq!(&payload[SEQ_LEN..], b"{}");
/// ```
pub fn seal_with_seq(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(SEQ_LEN + body.len());
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.extend_from_slice(body);
    seal(&payload)
}

/// Splits a checked payload into its leading sequence number and the rest.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint_sled::layout::{seal_with_seq, split_seq, unseal};
///
/// let frame = seal_with_seq(42, b"{}");
/// assert_eq!(split_seq(unseal(&frame).expect("intact")), Some((42, &b"{}"[..])));
/// // Fewer bytes than a sequence number hold none.
/// assert_eq!(split_seq(&[1, 2, 3]), None);
/// ```
pub fn split_seq(payload: &[u8]) -> Option<(u64, &[u8])> {
    let (seq, body) = payload.split_at_checked(SEQ_LEN)?;
    Some((u64::from_be_bytes(seq.try_into().ok()?), body))
}
