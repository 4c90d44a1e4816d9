//! Jobs a newer build of cairn wrote, met by this (older) build after a rollback: a job file
//! of a newer format version (the store's envelope) and a job document of a newer
//! `format_version` (the scheduler's). `cairn jobs list` and `jobs show` say that a newer
//! build wrote them and to use that build; nothing suggests `jobs rm`, and nothing moves,
//! rewrites or deletes them: after rolling forward again, the newer build finds them as it
//! left them.

mod common;

use common::{ECHO, Sandbox, assert_contains, assert_lacks, left_out_lines, text};

const OK: i32 = 0;
const LEFT_OUT: i32 = 6;

fn add(sandbox: &Sandbox, id: &str) {
    let output = sandbox.run(&["jobs", "add", "echo.toml", id, "--every", "10m"]);
    assert_eq!(output.status.code(), Some(OK), "{}", text(&output.stderr));
}

fn job_path(sandbox: &Sandbox, id: &str) -> std::path::PathBuf {
    sandbox.path(&format!(".cairn/jobs/{id}.json"))
}

/// Rewrites job `id`'s file as a newer build might: a higher file format version and fields
/// this build does not know.
fn newer_job_file(sandbox: &Sandbox, id: &str) -> Vec<u8> {
    let bytes = serde_json::to_vec_pretty(&serde_json::json!({
        "format_version": cairn_checkpoint_file::JOB_FILE_FORMAT_VERSION + 1,
        "id": id,
        "revision": 3,
        "body": {"schedule": "every 10m"},
    }))
    .unwrap();
    std::fs::write(job_path(sandbox, id), &bytes).unwrap();
    bytes
}

/// Rewrites job `id`'s document (checksum and all, through the store) with a newer
/// `format_version`, and a schedule this build does not know.
fn newer_job_document(sandbox: &Sandbox, id: &str) -> Vec<u8> {
    use cairn_checkpoint::JobStore as _;
    let store = cairn_checkpoint_file::FileJobStore::open(sandbox.path(".cairn")).unwrap();
    let id = cairn_checkpoint::JobId::new(id).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored = runtime.block_on(store.get(&id)).unwrap().expect("stored");
    let mut document = stored.document;
    document["format_version"] = (cairn_scheduler::JOB_FORMAT_VERSION + 1).into();
    document["schedule"] = serde_json::json!({"kind": "lunar", "phase": "full"});
    runtime
        .block_on(store.put(&id, Some(stored.version), &document))
        .unwrap()
        .expect("at its version");
    std::fs::read(store.job_path(&id)).unwrap()
}

fn quarantined(sandbox: &Sandbox) -> usize {
    std::fs::read_dir(sandbox.path(".cairn/jobs/quarantine"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[test]
fn list_and_show_say_a_newer_build_wrote_the_job_and_leave_it_alone() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    for id in ["good", "envelope", "document"] {
        add(&sandbox, id);
    }
    let kept = [
        ("envelope", newer_job_file(&sandbox, "envelope")),
        ("document", newer_job_document(&sandbox, "document")),
    ];

    for _ in 0..2 {
        let table = sandbox.run(&["jobs", "list"]);
        let (out, err) = (text(&table.stdout), text(&table.stderr));
        assert_eq!(table.status.code(), Some(LEFT_OUT), "{out}\n{err}");
        assert_contains(&out, "good");
        for (id, _) in &kept {
            assert_lacks(&out, id);
            let line = err
                .lines()
                .find(|line| line.contains(&format!("job {id} ")))
                .unwrap_or_else(|| panic!("job {id} is named: {err}"));
            assert_contains(line, "newer cairn build");
            assert_contains(line, "use the newer build");
        }
        assert_lacks(&err, "jobs rm");

        let json = sandbox.run(&["jobs", "list", "--json"]);
        assert_eq!(json.status.code(), Some(LEFT_OUT), "{}", text(&json.stderr));
        let events = left_out_lines(&text(&json.stderr));
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e["job_id"].as_str().unwrap(), e["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [("document", "newer_format"), ("envelope", "newer_format")],
            "{}",
            text(&json.stderr)
        );
        for event in &events {
            assert_eq!(
                event["at"],
                format!(".cairn/jobs/{}.json", event["job_id"].as_str().unwrap()),
                "{event}"
            );
        }
    }

    for (id, _) in &kept {
        let shown = sandbox.run(&["jobs", "show", id]);
        let err = text(&shown.stderr);
        assert_eq!(shown.status.code(), Some(LEFT_OUT), "{id}: {err}");
        assert_eq!(text(&shown.stdout).trim(), "", "{id}");
        assert_contains(&err, &format!("job {id} "));
        assert_contains(&err, "newer cairn build");
        assert_contains(&err, "use the newer build");
        assert_lacks(&err, "jobs rm");
        let json = sandbox.run(&["jobs", "show", id, "--json"]);
        assert_eq!(json.status.code(), Some(LEFT_OUT), "{}", text(&json.stderr));
        let events = left_out_lines(&text(&json.stderr));
        assert_eq!(events.len(), 1, "{}", text(&json.stderr));
        assert_eq!(events[0]["kind"], "newer_format");
        // Neither is changed or deleted by the commands that would change or delete a job.
        for args in [
            &["jobs", "pause", id][..],
            &["jobs", "resume", id, "--force"],
            &["jobs", "rm", id],
        ] {
            let refused = sandbox.run(args);
            assert_eq!(
                refused.status.code(),
                Some(LEFT_OUT),
                "{args:?}: {}",
                text(&refused.stderr)
            );
            assert_contains(&text(&refused.stderr), "newer cairn build");
        }
    }
    for (id, bytes) in &kept {
        assert_eq!(
            &std::fs::read(job_path(&sandbox, id)).unwrap(),
            bytes,
            "job {id} is left byte for byte"
        );
    }
    assert_eq!(quarantined(&sandbox), 0, "nothing was moved aside");
}
