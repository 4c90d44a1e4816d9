//! The harness's acknowledgement recorder wraps the adapter under test, so it must be
//! transparent: the whole conformance suite runs through it over the file adapter. Damage
//! cases are the file adapter's own (its crate runs them unwrapped); here they are skipped.

use std::sync::Arc;

use cairn_checkpoint::CheckpointerFactory;
use cairn_checkpoint::conformance::ConformanceHarness;
use cairn_checkpoint_file::FileFactory;
use cairn_crash::power_loss::{AckLog, AckRecordingFactory};

/// One fresh state folder; every factory is a new file adapter over it, recorded.
struct RecordedFiles {
    dir: tempfile::TempDir,
}

impl ConformanceHarness for RecordedFiles {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        let files = FileFactory::builder(self.dir.path())
            .build()
            .expect("a file adapter over a fresh folder");
        Arc::new(AckRecordingFactory::new(files, Arc::new(AckLog::default())))
    }
}

fn harness() -> RecordedFiles {
    RecordedFiles {
        dir: tempfile::tempdir().expect("a temp folder"),
    }
}

cairn_checkpoint::conformance_tests!(harness());
