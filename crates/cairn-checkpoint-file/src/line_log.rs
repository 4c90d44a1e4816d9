//! Append-only logs of checksummed JSON lines: each run's `audit.jsonl`, the root's
//! `quarantine.jsonl` and the job store's audit log.
//!
//! A line is `<crc32c of the JSON, 8 lowercase hex digits> <JSON>\n`, written with one write
//! and made durable with one fdatasync before the append is acknowledged. One line per write
//! means a power cut can damage only the last line, in any of its pages: the tail may be
//! missing (no newline yet), zero-filled, or hold a later page without the earlier one (so
//! it may even end in a newline). Whatever the damage, the last line fails its checksum and
//! is a torn append: readers skip it and the next append cuts it (and audits the cut). A
//! line that fails its checksum with a line after it was damaged after it was durable:
//! readers refuse the log, and nothing is cut.
//!
//! A line whose checksum holds but whose JSON this build does not decode (a record a newer
//! build wrote, such as an action added after this build) is not torn, wherever it is:
//! readers refuse the log and appends keep it, since a newer build's state is left in place.
//! Reading and appending judge "torn" by the same check ([`checks`]), so a line a read skips
//! is always the line the next append cuts.
//!
//! Lines written before checksums (bare JSON, starting with `{`) are still read; they carry
//! no checksum, so a bare line counts as whole when its JSON parses at all.

use std::io;

use serde::de::{DeserializeOwned, IgnoredAny};

/// A line ready to append: checksum, space, JSON, newline.
pub(crate) fn encode(json: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(json.len() + 10);
    line.extend_from_slice(format!("{:08x} ", crc32c::crc32c(json)).as_bytes());
    line.extend_from_slice(json);
    line.push(b'\n');
    line
}

/// Checks one line (without its newline) and returns its JSON: the checksum must hold, or,
/// for a bare line from a build before checksums, the JSON must parse. A line that fails
/// this is damaged; when it is the last line, it is a torn append.
///
/// # Errors
///
/// Why the line does not check: no or a bad checksum field, a checksum mismatch, or a bare
/// line that is not JSON.
fn checks(line: &[u8]) -> Result<&[u8], String> {
    if line.first() == Some(&b'{') {
        serde_json::from_slice::<IgnoredAny>(line).map_err(|err| err.to_string())?;
        return Ok(line);
    }
    let (crc, json) = match line.iter().position(|b| *b == b' ') {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => return Err("no checksum field".to_owned()),
    };
    let crc = std::str::from_utf8(crc)
        .ok()
        .filter(|text| text.len() == 8)
        .and_then(|text| u32::from_str_radix(text, 16).ok())
        .ok_or("the checksum field is not 8 hex digits")?;
    if crc32c::crc32c(json) != crc {
        return Err("checksum mismatch".to_owned());
    }
    Ok(json)
}

/// A line that failed its check with a line after it, or a line that checks but does not
/// decode.
#[derive(Debug)]
pub(crate) struct Damaged {
    /// Byte offset of the line's start.
    pub(crate) offset: u64,
    /// 1-based line number.
    pub(crate) line: usize,
    pub(crate) detail: String,
    /// The line's JSON when the line checks but does not decode as the record type: not
    /// damage but a record this build does not read (a newer build's), for the caller to
    /// name.
    pub(crate) undecoded: Option<Vec<u8>>,
}

/// Reads a whole log's records. Empty lines are skipped, and so is a torn last line: an
/// unterminated one (an append writes its newline in the same write as its record) or one
/// failing its check.
///
/// # Errors
///
/// [`Damaged`] for a line that fails its check and is not the last one, and for any line
/// that checks but does not decode as `T`.
pub(crate) fn scan<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, Damaged> {
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut rest = bytes;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Ok(records);
        };
        let (line, next) = (&rest[..end], &rest[end + 1..]);
        if !line.is_empty() {
            let damaged = |detail, undecoded| Damaged {
                offset,
                line: number,
                detail,
                undecoded,
            };
            match checks(line) {
                Ok(json) => match serde_json::from_slice(json) {
                    Ok(record) => records.push(record),
                    // Not torn, even as the last line: `torn_last_line` keeps it too.
                    Err(err) => return Err(damaged(err.to_string(), Some(json.to_vec()))),
                },
                Err(_) if next.is_empty() => return Ok(records),
                Err(detail) => return Err(damaged(detail, None)),
            }
        }
        offset += end as u64 + 1;
        rest = next;
    }
    Ok(records)
}

/// Where the last line of a log of `size` bytes starts, if that line is torn (unterminated,
/// or failing its check); reads only the last line, through `read_at` (offset and buffer,
/// returning the bytes read).
///
/// # Errors
///
/// The error of a read.
pub(crate) fn torn_last_line<R>(read_at: R, size: u64) -> io::Result<Option<u64>>
where
    R: Fn(u64, &mut [u8]) -> io::Result<usize>,
{
    if size == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    read_exact_at(&read_at, size - 1, &mut last)?;
    let terminated = last[0] == b'\n';
    // The line's own newline is not the one that ends the line before it.
    let body_end = if terminated { size - 1 } else { size };
    // Back to the newline before the line, a chunk at a time; each byte is read once here,
    // and the line once more below, so a long last line costs time linear in its length.
    let mut end = body_end;
    let mut chunk = vec![0u8; 4096];
    let start = loop {
        let from = end.saturating_sub(chunk.len() as u64);
        let len = (end - from) as usize;
        read_exact_at(&read_at, from, &mut chunk[..len])?;
        if let Some(pos) = chunk[..len].iter().rposition(|b| *b == b'\n') {
            break from + pos as u64 + 1;
        }
        if from == 0 {
            break 0;
        }
        end = from;
    };
    if !terminated {
        // An append writes its newline with its record: an unterminated line is torn.
        return Ok(Some(start));
    }
    let len = usize::try_from(body_end - start)
        .map_err(|_| io::Error::other("the log's last line is too long to check"))?;
    let mut body = vec![0u8; len];
    read_exact_at(&read_at, start, &mut body)?;
    let torn = !body.is_empty() && checks(&body).is_err();
    Ok(torn.then_some(start))
}

fn read_exact_at<R>(read_at: &R, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()>
where
    R: Fn(u64, &mut [u8]) -> io::Result<usize>,
{
    while !buf.is_empty() {
        let read = read_at(offset, buf)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the log ended while its last line was read",
            ));
        }
        offset += read as u64;
        buf = &mut buf[read..];
    }
    Ok(())
}
