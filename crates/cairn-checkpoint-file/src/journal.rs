//! Journal framing, and the scan that tells a torn last write from corruption in the middle.
//!
//! Format 2 (written by this build):
//!
//! ```text
//! file header   magic "CAIRNJNL" | version u32 LE (2) | crc32c u32 LE of the 12 bytes before
//! batch         magic "CJBT" | len u64 LE | offset u64 LE | body crc32c u32 LE | header crc32c u32 LE
//!               then `len` bytes of body: records, back to back
//! record        len u32 LE | seq u64 LE | crc u32 LE | payload (len bytes of JSON)
//! ```
//!
//! The file header is made durable before any batch (at `begin`, and kept by compaction's
//! truncate), so a journal that holds batches always starts with a valid one. Each write
//! batch is one `write` and one `fdatasync`, and the writer starts the next only after that
//! `fdatasync` returned, so at most ONE batch is ever unacknowledged on disk: the last. A
//! power cut may leave any subset of that batch's pages (an in-place overwrite's writeback
//! is unordered), but never damage an earlier batch. Recovery relies on exactly that:
//!
//! - a batch whose header checks out (magic, header CRC, offset equal to its position) but
//!   whose body CRC fails is the torn last write only if every byte after its extent is
//!   zero; otherwise it is corruption;
//! - where a batch header is expected but the bytes are not a valid one (zeros or
//!   garbage), it is the torn last write only if no valid batch (header CRC, body CRC and
//!   matching offset) starts anywhere after it; otherwise acknowledged batches follow the
//!   damage, and it is corruption.
//!
//! A record's CRC32C covers its payload, then its length and sequence bytes, so the
//! expensive part (the payload) can be checksummed before the sequence number is known.
//!
//! Format 1 (builds before batch framing) is the same records with no file header and no
//! batch frames. It is still read (with its own rules: a bad record with a good record
//! anywhere after it is corruption), so that its runs open; the store then rewrites such a
//! journal in format 2. A format-1 journal never starts with the file magic: its first
//! bytes are a record length of at most [`MAX_PAYLOAD_LEN`], and the magic read as a
//! length is larger.
//!
//! The journal file may end in zero bytes that nothing uses yet: the writer preallocates
//! them so that appends overwrite in place and each fdatasync flushes data only. A batch
//! header never starts with a zero byte, so zeros from a batch boundary to the end of the
//! file are the end of the journal.

use std::ops::Range;

/// Bytes before each record's payload.
pub(crate) const HEADER_LEN: usize = 16;

/// The largest payload accepted; a bigger length field is treated as damage.
pub(crate) const MAX_PAYLOAD_LEN: u32 = 256 * 1024 * 1024;

/// The first bytes of a format-2 journal.
pub(crate) const FILE_MAGIC: [u8; 8] = *b"CAIRNJNL";

/// The journal format this build writes.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// Bytes of the file header: magic, version, CRC.
pub(crate) const FILE_HEADER_LEN: usize = 16;

/// The first bytes of every batch header. Its last byte (the high byte of a little-endian
/// u32) is above any record length's, so a record header is never read as a batch.
pub(crate) const BATCH_MAGIC: [u8; 4] = *b"CJBT";

/// Bytes of a batch header: magic, body length, offset, body CRC, header CRC.
pub(crate) const BATCH_HEADER_LEN: usize = 28;

/// The CRC32C of a payload, computed before framing.
pub(crate) fn payload_crc(payload: &[u8]) -> u32 {
    crc32c::crc32c(payload)
}

fn record_crc(payload_crc: u32, len: u32, seq: u64) -> u32 {
    let mut tail = [0u8; 12];
    tail[..4].copy_from_slice(&len.to_le_bytes());
    tail[4..].copy_from_slice(&seq.to_le_bytes());
    crc32c::crc32c_append(payload_crc, &tail)
}

/// Fills in the header of one framed record: `record` is the record's [`HEADER_LEN`] header
/// bytes followed by its payload, whose CRC is `payload_crc`, and `seq` is at least 1. The
/// payload is not empty, and its length is at most [`MAX_PAYLOAD_LEN`] (`append` refuses a
/// larger event before framing it). The payload is serialized in place first and the header sealed once the
/// sequence number is known, so a batch's records are never copied to be framed.
pub(crate) fn seal(record: &mut [u8], seq: u64, payload_crc: u32) {
    let payload_len = record.len() - HEADER_LEN;
    debug_assert!(
        seq >= 1 && payload_len > 0 && payload_len <= MAX_PAYLOAD_LEN as usize,
        "records have a sequence number and a payload that a reader accepts"
    );
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    record[..4].copy_from_slice(&len.to_le_bytes());
    record[4..12].copy_from_slice(&seq.to_le_bytes());
    record[12..HEADER_LEN].copy_from_slice(&record_crc(payload_crc, len, seq).to_le_bytes());
}

/// The format-2 file header.
pub(crate) fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(&FILE_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The header of a batch whose `body` starts right after the header, which is written at
/// file offset `offset`.
pub(crate) fn batch_header(offset: u64, body: &[u8]) -> [u8; BATCH_HEADER_LEN] {
    let mut header = [0u8; BATCH_HEADER_LEN];
    header[..4].copy_from_slice(&BATCH_MAGIC);
    header[4..12].copy_from_slice(&(body.len() as u64).to_le_bytes());
    header[12..20].copy_from_slice(&offset.to_le_bytes());
    header[20..24].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let crc = crc32c::crc32c(&header[..24]);
    header[24..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// A whole format-2 journal holding `records` (framed records, back to back), in batches of
/// at most about `max_batch` bytes each (a record is never split).
pub(crate) fn framed_journal<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
    max_batch: usize,
) -> Vec<u8> {
    let mut out = file_header().to_vec();
    let mut body = Vec::new();
    let flush = |out: &mut Vec<u8>, body: &mut Vec<u8>| {
        if !body.is_empty() {
            let header = batch_header(out.len() as u64, body);
            out.extend_from_slice(&header);
            out.append(body);
        }
    };
    for record in records {
        if !body.is_empty() && body.len() + record.len() > max_batch {
            flush(&mut out, &mut body);
        }
        body.extend_from_slice(record);
    }
    flush(&mut out, &mut body);
    out
}

/// A whole format-2 journal holding one batch per body in `bodies` (each a run of framed
/// records), in order: how compaction carries the batches written after its snapshot into
/// a new journal, each under a header for its new offset.
pub(crate) fn journal_of_batches<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = file_header().to_vec();
    for body in bodies {
        let header = batch_header(out.len() as u64, body);
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
    }
    out
}

/// One good record found by `scan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScannedRecord {
    /// Its sequence number.
    pub(crate) seq: u64,
    /// Where it starts in the journal.
    pub(crate) offset: u64,
    /// Where its payload lies in the scanned bytes.
    pub(crate) payload: Range<usize>,
}

/// Adds the good record of `total` bytes at `at` to `records` if its sequence number follows
/// the previous one (both formats require no gaps); a gap is the corruption returned.
fn accept(
    records: &mut Vec<ScannedRecord>,
    expected_seq: &mut Option<u64>,
    seq: u64,
    at: usize,
    total: usize,
) -> Result<(), Ending> {
    // Numbers start at 1 (0 would read as covered by any snapshot, and be skipped), and
    // one is left for the next record; the writer never seals any other.
    let Some(next) = seq.checked_add(1).filter(|_| seq >= 1) else {
        return Err(Ending::Corrupt {
            offset: at as u64,
            detail: format!("sequence {seq} is not one a record can have"),
        });
    };
    if let Some(expected) = *expected_seq
        && seq != expected
    {
        return Err(Ending::Corrupt {
            offset: at as u64,
            detail: format!("sequence {seq} where {expected} was expected"),
        });
    }
    records.push(ScannedRecord {
        seq,
        offset: at as u64,
        payload: at + HEADER_LEN..at + total,
    });
    *expected_seq = Some(next);
    Ok(())
}

/// How the journal ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every byte up to `end` belongs to the file header or a good batch (or, in format 1,
    /// a good record), and every byte after it (the preallocated space, if any) is zero.
    Clean {
        /// Where the last good batch ends: the next batch is written here.
        end: u64,
    },
    /// The last write is torn and nothing acknowledged can follow it: cut at `offset`.
    Torn {
        /// Where the bad batch (or format-1 record) starts.
        offset: u64,
        /// How many bytes follow (and would be cut), preallocated zeros included.
        bytes: u64,
        /// How many of them run up to the last non-zero byte: what the torn write left.
        written: u64,
    },
    /// Damage with acknowledged data after it, or sequence numbers that skip: corruption.
    Corrupt {
        /// Where the first bad batch (or record) starts.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A valid file header names a format this build does not read.
    Unsupported {
        /// The format version found.
        version: u32,
    },
}

/// Which format the scanned journal is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Format 2: a file header and framed batches.
    Framed,
    /// No file header: format 1 (records only), or an empty (or all-zero) journal.
    Unframed,
}

/// What `scan` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Good records, in order, up to the first bad batch (or record).
    pub(crate) records: Vec<ScannedRecord>,
    /// How the journal ends.
    pub(crate) ending: Ending,
    /// The journal's format.
    pub(crate) format: Format,
}

/// Checks the record at `offset`, which must end by `limit`; `Ok` gives its sequence number
/// and total length.
fn check_record(bytes: &[u8], offset: usize, limit: usize) -> Result<(u64, usize), &'static str> {
    let rest = &bytes[offset..limit];
    if rest.len() < HEADER_LEN {
        return Err("incomplete record header");
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(rest[12..16].try_into().expect("4 bytes"));
    if len == 0 {
        // Real payloads are JSON and never empty; this keeps a zero header from being valid.
        return Err("record length is zero");
    }
    if len > MAX_PAYLOAD_LEN {
        return Err("record length is implausible");
    }
    let total = HEADER_LEN + len as usize;
    if rest.len() < total {
        return Err("record runs past its end");
    }
    let payload = &rest[HEADER_LEN..total];
    if record_crc(payload_crc(payload), len, seq) != crc {
        return Err("record checksum mismatch");
    }
    Ok((seq, total))
}

/// Whether everything from `offset` to the end is zero: the unused preallocated space.
/// The length of `bytes[offset..]` up to its last non-zero byte (0 when all zeros).
fn written_from(bytes: &[u8], offset: usize) -> u64 {
    let tail = bytes.get(offset..).unwrap_or_default();
    tail.iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last as u64 + 1)
}

fn zeros_from(bytes: &[u8], offset: usize) -> bool {
    bytes[offset.min(bytes.len())..].iter().all(|b| *b == 0)
}

/// Why the bytes at a batch boundary are not a good batch.
enum BatchDamage {
    /// No valid batch header here: zeros, garbage, a torn header, or a header naming
    /// another offset.
    Header(&'static str),
    /// A valid header whose body is incomplete or fails its CRC; the batch's extent ends at
    /// `end` (possibly past the end of the file).
    Body { end: usize, problem: &'static str },
}

/// Checks the batch at `offset`; `Ok` gives the byte range of its body.
fn check_batch(bytes: &[u8], offset: usize) -> Result<Range<usize>, BatchDamage> {
    let rest = &bytes[offset..];
    if rest.len() < BATCH_HEADER_LEN {
        return Err(BatchDamage::Header("incomplete batch header"));
    }
    let header = &rest[..BATCH_HEADER_LEN];
    if header[..4] != BATCH_MAGIC {
        return Err(BatchDamage::Header("no batch header"));
    }
    let stored_crc = u32::from_le_bytes(header[24..28].try_into().expect("4 bytes"));
    if crc32c::crc32c(&header[..24]) != stored_crc {
        return Err(BatchDamage::Header("batch header checksum mismatch"));
    }
    let len = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
    let at = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    if at != offset as u64 {
        return Err(BatchDamage::Header("batch header names another offset"));
    }
    let body_crc = u32::from_le_bytes(header[20..24].try_into().expect("4 bytes"));
    let start = offset + BATCH_HEADER_LEN;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .unwrap_or(usize::MAX);
    if end > bytes.len() {
        return Err(BatchDamage::Body {
            end,
            problem: "batch runs past the end of the journal",
        });
    }
    if crc32c::crc32c(&bytes[start..end]) != body_crc {
        return Err(BatchDamage::Body {
            end,
            problem: "batch checksum mismatch",
        });
    }
    Ok(start..end)
}

/// Where the first fully valid batch at or after `from` starts, if any.
fn valid_batch_from(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + BATCH_HEADER_LEN <= bytes.len() {
        let next = bytes[at..]
            .windows(BATCH_MAGIC.len())
            .position(|window| window == BATCH_MAGIC)?;
        at += next;
        if check_batch(bytes, at).is_ok() {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Reads every good record. See the module docs for the rules.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    if bytes.len() >= FILE_HEADER_LEN && bytes[..FILE_MAGIC.len()] == FILE_MAGIC {
        let stored_crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..12]) == stored_crc {
            let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
            if version != FORMAT_VERSION {
                return Scan {
                    records: Vec::new(),
                    ending: Ending::Unsupported { version },
                    format: Format::Framed,
                };
            }
            return scan_framed(bytes);
        }
    }
    // No valid file header. The header is durable before any batch is written, so this is
    // a format-1 journal (or an empty one), read by format 1's rules; a damaged header of a
    // format-2 journal reads as a bad first record followed by good ones: corruption.
    scan_unframed(bytes)
}

fn scan_framed(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut offset = FILE_HEADER_LEN;
    let mut expected_seq: Option<u64> = None;
    let done = |records, ending| Scan {
        records,
        ending,
        format: Format::Framed,
    };
    while offset < bytes.len() {
        // Only a zero first byte can start the preallocated tail (a batch starts with its
        // magic), so the full check runs at most a few times, not once per batch.
        if bytes[offset] == 0 && zeros_from(bytes, offset) {
            break;
        }
        match check_batch(bytes, offset) {
            Ok(body) => {
                let mut at = body.start;
                while at < body.end {
                    let (seq, total) = match check_record(bytes, at, body.end) {
                        Ok(found) => found,
                        Err(problem) => {
                            return done(
                                records,
                                Ending::Corrupt {
                                    offset: at as u64,
                                    detail: format!(
                                        "a batch whose checksum holds has a bad record: {problem}"
                                    ),
                                },
                            );
                        }
                    };
                    if let Err(ending) = accept(&mut records, &mut expected_seq, seq, at, total) {
                        return done(records, ending);
                    }
                    at += total;
                }
                offset = body.end;
            }
            Err(BatchDamage::Body { end, problem }) => {
                // Only the last batch can be unacknowledged, and nothing is ever written
                // after it, so a torn batch has nothing but zeros after its extent.
                let ending = if zeros_from(bytes, end) {
                    Ending::Torn {
                        offset: offset as u64,
                        bytes: (bytes.len() - offset) as u64,
                        written: written_from(bytes, offset),
                    }
                } else {
                    Ending::Corrupt {
                        offset: offset as u64,
                        detail: format!("{problem}, and non-zero bytes follow the batch"),
                    }
                };
                return done(records, ending);
            }
            Err(BatchDamage::Header(problem)) => {
                // A torn last write can leave any of its pages, including later ones that
                // hold whole records; only a valid batch after the damage proves that
                // acknowledged data follows it.
                let ending = match valid_batch_from(bytes, offset + 1) {
                    Some(later) => Ending::Corrupt {
                        offset: offset as u64,
                        detail: format!("{problem}, and a valid batch follows at byte {later}"),
                    },
                    None => Ending::Torn {
                        offset: offset as u64,
                        bytes: (bytes.len() - offset) as u64,
                        written: written_from(bytes, offset),
                    },
                };
                return done(records, ending);
            }
        }
    }
    let end = offset.min(bytes.len()) as u64;
    done(records, Ending::Clean { end })
}

/// Format 1: records from offset 0. Zeros from a record boundary to the end are the end of
/// the journal. A bad record with no good record anywhere after it is a torn tail; a bad
/// record followed by a good one (or a gap in sequence numbers) is corruption. A zero
/// header that is followed by non-zero bytes counts as a bad record.
fn scan_unframed(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut expected_seq: Option<u64> = None;
    let done = |records, ending| Scan {
        records,
        ending,
        format: Format::Unframed,
    };
    while offset < bytes.len() {
        if bytes[offset] == 0 && zeros_from(bytes, offset) {
            return done(records, Ending::Clean { end: offset as u64 });
        }
        match check_record(bytes, offset, bytes.len()) {
            Ok((seq, total)) => {
                if let Err(ending) = accept(&mut records, &mut expected_seq, seq, offset, total) {
                    return done(records, ending);
                }
                offset += total;
            }
            Err(problem) => {
                // Quadratic in the worst case (each plausible length field costs a CRC over
                // its payload), which only a crafted file reaches: it runs once per format-1
                // journal, whose next open rewrites it in format 2. A linear search would have
                // to skip some candidates, and then a good record after damage could go
                // unseen and the damage be cut as a torn tail.
                let good_later =
                    (offset + 1..bytes.len()).any(|p| check_record(bytes, p, bytes.len()).is_ok());
                let ending = if good_later {
                    Ending::Corrupt {
                        offset: offset as u64,
                        detail: format!("{problem}, and good records follow"),
                    }
                } else {
                    Ending::Torn {
                        offset: offset as u64,
                        bytes: (bytes.len() - offset) as u64,
                        written: written_from(bytes, offset),
                    }
                };
                return done(records, ending);
            }
        }
    }
    done(
        records,
        Ending::Clean {
            end: bytes.len() as u64,
        },
    )
}
