//! A conformance harness over a temporary directory, shared by this crate's tests.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_checkpoint::conformance::{ConformanceHarness, Damage};
use cairn_checkpoint::{CheckpointerFactory, Durability, RunId};
use cairn_checkpoint_file::FileFactory;

/// Header bytes before each journal payload: len u32, seq u64, crc u32.
pub const HEADER_LEN: usize = 16;

/// One temporary root; each `factory()` is a fresh `FileFactory` over it.
#[derive(Debug)]
pub struct FileHarness {
    pub dir: tempfile::TempDir,
    pub durability: Durability,
}

impl Default for FileHarness {
    fn default() -> Self {
        FileHarness::new()
    }
}

impl FileHarness {
    pub fn new() -> FileHarness {
        FileHarness::with(Durability::Sync)
    }

    pub fn with(durability: Durability) -> FileHarness {
        FileHarness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            durability,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn run_dir(&self, run_id: &RunId) -> PathBuf {
        self.root().join("runs").join(run_id.as_str())
    }

    pub fn journal(&self, run_id: &RunId) -> PathBuf {
        self.run_dir(run_id).join("journal")
    }

    pub fn file_factory(&self) -> FileFactory {
        FileFactory::builder(self.root())
            .durability(self.durability)
            .build()
            .expect("build the factory")
    }
}

/// Start offsets of the journal's records.
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + HEADER_LEN + len > bytes.len() {
            break;
        }
        offsets.push(at);
        at += HEADER_LEN + len;
    }
    offsets
}

fn rewrite_meta(path: &Path, change: impl FnOnce(&mut serde_json::Value)) -> Damage {
    let Ok(bytes) = std::fs::read(path) else {
        return Damage::Unsupported(format!("{} is missing", path.display()));
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).expect("meta.json parses");
    change(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).expect("rewrite meta.json");
    Damage::Applied { offset: None }
}

impl ConformanceHarness for FileHarness {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.file_factory())
    }

    fn tear_last_record(&self, run_id: &RunId) -> Damage {
        let path = self.journal(run_id);
        let bytes = std::fs::read(&path).expect("read the journal");
        let offsets = record_offsets(&bytes);
        let Some(&last) = offsets.last() else {
            return Damage::Unsupported("the journal has no record".to_owned());
        };
        // Keep part of the last record's payload, as a write cut short would.
        let keep = last + HEADER_LEN + 3;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(keep as u64).unwrap();
        Damage::Applied {
            offset: Some(last as u64),
        }
    }

    fn corrupt_middle_record(&self, run_id: &RunId) -> Damage {
        let path = self.journal(run_id);
        let mut bytes = std::fs::read(&path).expect("read the journal");
        let offsets = record_offsets(&bytes);
        if offsets.len() < 3 {
            return Damage::Unsupported("fewer than three records".to_owned());
        }
        let victim = offsets[1];
        bytes[victim + HEADER_LEN + 1] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        Damage::Applied {
            offset: Some(victim as u64),
        }
    }

    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        rewrite_meta(&self.run_dir(run_id).join("meta.json"), |meta| {
            meta["format_version"] = serde_json::json!(99);
        })
    }

    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        rewrite_meta(&self.run_dir(run_id).join("meta.json"), |meta| {
            meta["run_id"] = serde_json::json!(foreign.as_str());
        })
    }
}
