//! Journal framing: `len: u32 LE | seq: u64 LE | crc: u32 LE | payload`, and the scan that
//! tells a torn last record from corruption in the middle.
//!
//! The CRC32C covers the payload, then the length and sequence bytes, so the expensive part
//! (the payload) can be checksummed before the sequence number is known.
//!
//! The journal file may end in zero bytes that no record uses yet: the writer preallocates
//! them so that appends overwrite in place and each fdatasync flushes data only. A real
//! record never starts with a zero header (its length and sequence number are at least 1),
//! so the first all-zero header followed only by zeros up to the end of the file is the end
//! of the journal.

use std::ops::Range;

/// Bytes before each payload.
pub(crate) const HEADER_LEN: usize = 16;

/// The largest payload accepted; a bigger length field is treated as damage.
pub(crate) const MAX_PAYLOAD_LEN: u32 = 256 * 1024 * 1024;

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

/// Appends one framed record to `out`. `seq` is at least 1 and `payload` is not empty, so
/// the header is never all zeros (which `scan` reads as the end of the journal).
pub(crate) fn frame(out: &mut Vec<u8>, seq: u64, payload: &[u8], payload_crc: u32) {
    debug_assert!(
        seq >= 1 && !payload.is_empty(),
        "a zero header would end the journal"
    );
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&record_crc(payload_crc, len, seq).to_le_bytes());
    out.extend_from_slice(payload);
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

/// How the journal ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Every byte up to `end` belongs to a good record, and every byte after it (the
    /// preallocated space, if any) is zero.
    Clean {
        /// Where the last good record ends: the next record is written here.
        end: u64,
    },
    /// The last record is torn or invalid and nothing good follows it: cut at `offset`.
    Torn {
        /// Where the bad record starts.
        offset: u64,
        /// How many bytes follow (and would be cut).
        bytes: u64,
    },
    /// A bad record is followed by a good one, or sequence numbers skip: corruption.
    Corrupt {
        /// Where the first bad record starts.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

/// What `scan` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Good records, in order, up to the first bad one.
    pub(crate) records: Vec<ScannedRecord>,
    /// How the journal ends.
    pub(crate) ending: Ending,
}

/// Checks the record at `offset`; `Ok` gives its sequence number and total length.
fn check_record(bytes: &[u8], offset: usize) -> Result<(u64, usize), &'static str> {
    let rest = &bytes[offset..];
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
        return Err("record runs past the end of the journal");
    }
    let payload = &rest[HEADER_LEN..total];
    if record_crc(payload_crc(payload), len, seq) != crc {
        return Err("checksum mismatch");
    }
    Ok((seq, total))
}

/// Whether everything from `offset` to the end is zero: the unused preallocated space.
fn zeros_from(bytes: &[u8], offset: usize) -> bool {
    bytes[offset..].iter().all(|b| *b == 0)
}

/// Reads every good record. Zeros from a record boundary to the end are the end of the
/// journal. A bad record with no good record anywhere after it is a torn tail; a bad record
/// followed by a good one (or a gap in sequence numbers) is corruption. A zero header that
/// is followed by non-zero bytes counts as a bad record.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut expected_seq: Option<u64> = None;
    while offset < bytes.len() {
        // Only a zero first header byte can start the preallocated tail, so the full check
        // runs at most a few times, not once per record.
        if bytes[offset] == 0 && zeros_from(bytes, offset) {
            return Scan {
                records,
                ending: Ending::Clean { end: offset as u64 },
            };
        }
        match check_record(bytes, offset) {
            Ok((seq, total)) => {
                if let Some(expected) = expected_seq
                    && seq != expected
                {
                    return Scan {
                        records,
                        ending: Ending::Corrupt {
                            offset: offset as u64,
                            detail: format!("sequence {seq} where {expected} was expected"),
                        },
                    };
                }
                records.push(ScannedRecord {
                    seq,
                    offset: offset as u64,
                    payload: offset + HEADER_LEN..offset + total,
                });
                expected_seq = Some(seq + 1);
                offset += total;
            }
            Err(problem) => {
                let good_later = (offset + 1..bytes.len()).any(|p| check_record(bytes, p).is_ok());
                let ending = if good_later {
                    Ending::Corrupt {
                        offset: offset as u64,
                        detail: format!("{problem}, and good records follow"),
                    }
                } else {
                    Ending::Torn {
                        offset: offset as u64,
                        bytes: (bytes.len() - offset) as u64,
                    }
                };
                return Scan { records, ending };
            }
        }
    }
    Scan {
        records,
        ending: Ending::Clean {
            end: bytes.len() as u64,
        },
    }
}
