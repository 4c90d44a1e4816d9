//! Run ids: validated as safe path components, and generated ids sort by time, never repeat
//! for distinct entropy, and spread small counters over every character.

use std::collections::BTreeSet;

use cairn_checkpoint::{Error, RunId};

#[test]
fn generated_ids_are_unique_for_distinct_entropy_and_valid() {
    let ids: BTreeSet<String> = (0..20_000u128)
        .map(|counter| RunId::generate(1_700_000_000_000, (7u128 << 64) | (counter << 32)))
        .map(|id| id.to_string())
        .collect();
    assert_eq!(ids.len(), 20_000);
    for id in &ids {
        assert_eq!(id.len(), 26);
        assert!(RunId::new(id.clone()).is_ok(), "{id}");
    }
}

#[test]
fn generated_ids_sort_by_time() {
    let earlier = RunId::generate(1_000, u128::MAX);
    let later = RunId::generate(1_001, 0);
    assert!(earlier < later);
}

#[test]
fn small_counters_do_not_leave_runs_of_zeros() {
    // Entropy from a pid and a counter is mostly zero bits; the id must not show that.
    let id = RunId::generate(1_700_000_000_000, (42u128 << 64) | 1).to_string();
    let random_part = &id[10..];
    assert!(!random_part.contains("0000"), "{id}");
}

#[test]
fn ids_that_could_escape_a_folder_are_refused() {
    for bad in ["", "..", "a/b", "a\\b", ".hidden", "x y", &"a".repeat(65)] {
        let err = RunId::new(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidRunId { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

#[test]
fn ids_that_would_read_as_a_command_line_option_are_refused() {
    for bad in ["-lead", "-", "--help", "-_x"] {
        let err = RunId::new(bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidRunId { ref id, .. } if id == bad),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("must not start with '-'"), "{err}");
        // Deserializing goes through the same check, so stored state cannot smuggle one in.
        assert!(serde_json::from_str::<RunId>(&format!("\"{bad}\"")).is_err());
    }
    // A '-' anywhere else is fine, as in `nightly-build`, and so is a leading '_' or digit.
    for good in ["a-", "nightly-build", "_x", "0-1", "a--b"] {
        assert!(RunId::new(good).is_ok(), "{good:?}");
    }
}
