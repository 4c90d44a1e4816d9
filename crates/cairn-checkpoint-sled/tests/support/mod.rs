//! Shared test support: harnesses over a sled database, and hooks that damage stored state
//! the way a crash or a foreign writer would.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;

use cairn_checkpoint::conformance::{ConformanceHarness, Damage};
use cairn_checkpoint::{CheckpointerFactory, Durability, META_FORMAT_VERSION, RunId};
use cairn_checkpoint_sled::SledFactory;
use cairn_checkpoint_sled::layout;

/// A harness whose factories each open the database by path. While one is alive the others
/// share its handle (sled allows one open per process); once all are dropped, the next one
/// really reopens the files, as a restarted process would.
#[derive(Debug)]
pub struct PathHarness {
    dir: tempfile::TempDir,
    durability: Durability,
}

impl PathHarness {
    pub fn new(durability: Durability) -> PathHarness {
        PathHarness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            durability,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("cairn.sled")
    }

    pub fn sled_factory(&self) -> SledFactory {
        SledFactory::builder()
            .path(self.path())
            .durability(self.durability)
            .build()
            .expect("the sled database opens")
    }

    fn with_db(&self, damage: impl FnOnce(&sled::Db) -> Damage) -> Damage {
        let factory = self.sled_factory();
        let outcome = damage(factory.db());
        factory.db().flush().expect("flush after damage");
        outcome
    }
}

impl ConformanceHarness for PathHarness {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.sled_factory())
    }
    fn tear_last_record(&self, run_id: &RunId) -> Damage {
        self.with_db(|db| tear_last_record(db, run_id))
    }
    fn corrupt_middle_record(&self, run_id: &RunId) -> Damage {
        self.with_db(|db| corrupt_middle_record(db, run_id))
    }
    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        self.with_db(|db| {
            rewrite_meta(db, run_id, |meta| {
                meta["format_version"] = serde_json::json!(0);
            })
        })
    }
    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        self.with_db(|db| {
            rewrite_meta(db, run_id, |meta| {
                meta["format_version"] = serde_json::json!(META_FORMAT_VERSION + 100);
            })
        })
    }
    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        self.with_db(|db| {
            rewrite_meta(db, run_id, |meta| {
                meta["run_id"] = serde_json::json!(foreign.as_str());
            })
        })
    }
}

/// A harness over one `sled::Db` the host opened itself; every factory is built from a
/// clone of that handle.
#[derive(Debug)]
pub struct DbHarness {
    dir: tempfile::TempDir,
    db: sled::Db,
    durability: Durability,
}

impl DbHarness {
    pub fn new(durability: Durability) -> DbHarness {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = sled::open(dir.path().join("host.sled")).expect("sled opens");
        DbHarness {
            dir,
            db,
            durability,
        }
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    pub fn sled_factory(&self) -> SledFactory {
        SledFactory::builder()
            .db(self.db.clone(), self.dir.path().join("host.sled"))
            .durability(self.durability)
            .build()
            .expect("the factory builds")
    }
}

impl ConformanceHarness for DbHarness {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.sled_factory())
    }
    fn tear_last_record(&self, run_id: &RunId) -> Damage {
        tear_last_record(&self.db, run_id)
    }
    fn corrupt_middle_record(&self, run_id: &RunId) -> Damage {
        corrupt_middle_record(&self.db, run_id)
    }
    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        rewrite_meta(&self.db, run_id, |meta| {
            meta["format_version"] = serde_json::json!(0);
        })
    }
    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        rewrite_meta(&self.db, run_id, |meta| {
            meta["format_version"] = serde_json::json!(META_FORMAT_VERSION + 100);
        })
    }
    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        rewrite_meta(&self.db, run_id, |meta| {
            meta["run_id"] = serde_json::json!(foreign.as_str());
        })
    }
}

/// The journal records of a run, in order.
pub fn journal(db: &sled::Db, run_id: &RunId) -> Vec<(sled::IVec, sled::IVec)> {
    db.open_tree(layout::EVENTS_TREE)
        .expect("events tree")
        .scan_prefix(layout::run_prefix(run_id))
        .collect::<sled::Result<_>>()
        .expect("scan the journal")
}

/// Cuts the last three bytes off the run's last journal record, as a torn write would.
pub fn tear_last_record(db: &sled::Db, run_id: &RunId) -> Damage {
    let records = journal(db, run_id);
    let Some((key, value)) = records.last() else {
        return Damage::Unsupported(format!("run {run_id} has no journal record"));
    };
    let seq = layout::seq_of_key(layout::run_prefix(run_id).len(), key).expect("a journal key");
    let torn = value[..value.len() - 3].to_vec();
    db.open_tree(layout::EVENTS_TREE)
        .expect("events tree")
        .insert(key, torn)
        .expect("write the torn record");
    Damage::Applied { offset: Some(seq) }
}

/// Flips a byte inside a journal record that has good records after it.
pub fn corrupt_middle_record(db: &sled::Db, run_id: &RunId) -> Damage {
    let records = journal(db, run_id);
    if records.len() < 3 {
        return Damage::Unsupported(format!("run {run_id} has fewer than 3 records"));
    }
    let (key, value) = &records[records.len() / 2];
    let seq = layout::seq_of_key(layout::run_prefix(run_id).len(), key).expect("a journal key");
    let mut bad = value.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x20;
    db.open_tree(layout::EVENTS_TREE)
        .expect("events tree")
        .insert(key, bad)
        .expect("write the bad record");
    Damage::Applied { offset: Some(seq) }
}

/// Rewrites the run's metadata JSON (with a valid checksum, so only the content is wrong).
pub fn rewrite_meta(
    db: &sled::Db,
    run_id: &RunId,
    change: impl FnOnce(&mut serde_json::Value),
) -> Damage {
    let runs = db.open_tree(layout::RUNS_TREE).expect("runs tree");
    let Some(frame) = runs.get(run_id.as_str()).expect("read meta") else {
        return Damage::Unsupported(format!("run {run_id} is not stored"));
    };
    let payload = layout::unseal(&frame).expect("stored meta passes its checksum");
    let mut meta: serde_json::Value = serde_json::from_slice(payload).expect("meta is JSON");
    change(&mut meta);
    let json = serde_json::to_vec(&meta).expect("encode meta");
    runs.insert(run_id.as_str(), layout::seal(&json))
        .expect("write meta");
    Damage::Applied { offset: None }
}
