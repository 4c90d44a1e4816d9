//! Checking that a durable bench's `--dir` is a directory on a disk, not in memory.
//!
//! The checkpoint and executor benches time fdatasync. On tmpfs or ramfs (where `/tmp` lives
//! on many distributions) fdatasync returns at once, so their rows would read as durable
//! throughput while nothing reached a disk. The bench refuses such a directory instead.

use std::path::Path;

use anyhow::{Context, bail};

/// File systems that keep files in memory only.
const MEMORY_FILE_SYSTEMS: [&str; 2] = ["tmpfs", "ramfs"];

/// Refuses `dir` (the bench's `--dir`, by default the temp dir) unless it is an existing
/// directory outside a memory file system.
pub(crate) fn require_disk(dir: &Path) -> anyhow::Result<()> {
    let canonical = dir.canonicalize().with_context(|| {
        format!(
            "the bench directory {} (--dir) does not exist; pass --dir with a directory on a disk",
            dir.display()
        )
    })?;
    if !canonical.is_dir() {
        bail!(
            "the bench directory {} (--dir) is not a directory; pass --dir with a directory on a disk",
            dir.display()
        );
    }
    // Without a mount table (not Linux), the check cannot be made; the bench goes on.
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Ok(());
    };
    if let Some(fs_type) = file_system_of(&mounts, &canonical)
        && MEMORY_FILE_SYSTEMS.contains(&fs_type)
    {
        bail!(
            "the bench directory {} (--dir) is on {fs_type}, in memory: fdatasync there reaches \
             no disk, so the durable rows would be meaningless; pass --dir with a directory on a \
             disk",
            dir.display()
        );
    }
    Ok(())
}

/// The type of the file system `path` (absolute, canonical) is on, read from `mounts` in the
/// format of `/proc/self/mounts`: the longest mount point that contains it, the later of
/// equal ones (a later mount hides an earlier one at the same place).
fn file_system_of<'m>(mounts: &'m str, path: &Path) -> Option<&'m str> {
    let mut best: Option<(usize, &str)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_device), Some(point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let point = unescape_mount_point(point);
        if path.starts_with(&point) && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), fs_type));
        }
    }
    best.map(|(_, fs_type)| fs_type)
}

/// Undoes the octal escapes (`\040` for a space, and so on) the mount table uses in paths.
fn unescape_mount_point(point: &str) -> String {
    let bytes = point.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes.get(i + 1..i + 4).filter(|digits| {
            bytes[i] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        match escaped {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::file_system_of;
    use std::path::Path;

    const MOUNTS: &str = "\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid,nodev 0 0
/dev/vdb /tmp/disk ext4 rw 0 0
tmpfs /mnt/with\\040space tmpfs rw 0 0
/dev/vdc /srv ext4 rw 0 0
tmpfs /srv tmpfs rw 0 0
";

    #[test]
    fn the_longest_and_latest_mount_point_decides() {
        let of = |path: &str| file_system_of(MOUNTS, Path::new(path));
        assert_eq!(of("/tmp"), Some("tmpfs"));
        assert_eq!(of("/tmp/cairn"), Some("tmpfs"));
        assert_eq!(of("/tmp/disk/cairn"), Some("ext4"));
        // A path component, not a string prefix: /tmpx is on the root disk.
        assert_eq!(of("/tmpx"), Some("ext4"));
        assert_eq!(of("/mnt/with space/bench"), Some("tmpfs"));
        // tmpfs mounted over /srv later hides the disk there.
        assert_eq!(of("/srv/bench"), Some("tmpfs"));
        assert_eq!(of("/home"), Some("ext4"));
    }
}
