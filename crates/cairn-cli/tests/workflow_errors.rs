//! Bad workflow files stop `cairn run` before anything starts: exit code 2 and a message
//! naming the file, line and column. One test per error kind.

mod common;

use common::{Sandbox, text};

/// Runs a bad workflow and checks exit 2, the `file:line:` location, and that no task ran
/// and no run was recorded.
fn assert_rejected(body: &str, line: usize) -> String {
    let sandbox = Sandbox::new();
    let text_with_marker = format!("{body}\n");
    sandbox.write("wf.toml", &text_with_marker);
    let output = sandbox.run(&["run", "wf.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("wf.toml:{line}:")),
        "expected the location wf.toml:{line}: in {stderr:?}"
    );
    assert!(
        !sandbox.path("ran").exists(),
        "a task ran although the workflow is bad"
    );
    assert!(
        !sandbox.path(".cairn").exists(),
        "a run was recorded although the workflow is bad"
    );
    stderr
}

const GOOD_TASK: &str = "[[task]]\nid = \"ok\"\nrun = \"touch ran\"\n";

#[test]
fn unknown_dependency_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\ndepends_on = [\"ok\", \"missing\"]"
    );
    let stderr = assert_rejected(&body, 8);
    assert!(stderr.contains("missing"));
}

#[test]
fn cycle_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"a\"\nrun = \"touch ran\"\ndepends_on = [\"b\"]\n[[task]]\nid = \"b\"\nrun = \"touch ran\"\ndepends_on = [\"a\"]"
    );
    let stderr = assert_rejected(&body, 8);
    assert!(stderr.contains("a -> b -> a"), "{stderr}");
}

#[test]
fn duplicate_id_is_located() {
    let body = format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"ok\"\nrun = \"touch ran\"");
    assert_rejected(&body, 6);
}

#[test]
fn bad_duration_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"slow\"\nrun = \"touch ran\"\ntimeout = \"5 parsecs\""
    );
    assert_rejected(&body, 8);
}

#[test]
fn unknown_task_key_is_located() {
    let body =
        format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\nretries = 3");
    let stderr = assert_rejected(&body, 8);
    assert!(stderr.contains("retries"), "{stderr}");
}

#[test]
fn unknown_top_level_key_is_located() {
    let body = format!("name = \"w\"\nversion = 2\n{GOOD_TASK}");
    assert_rejected(&body, 2);
}

#[test]
fn missing_file_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["run", "nope.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("nope.toml"));
}

#[test]
fn an_env_name_with_an_equals_sign_is_located() {
    // `A=B = "c"` would reach the command as `A` with the value `B=c`.
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\nenv = {{ \"A=B\" = \"c\" }}"
    );
    let stderr = assert_rejected(&body, 8);
    assert!(stderr.contains("A=B"), "{stderr}");
}

#[test]
fn an_empty_env_name_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\nenv = {{ \"\" = \"c\" }}"
    );
    assert_rejected(&body, 8);
}

#[test]
fn a_nul_character_in_an_env_value_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\nenv = {{ A = \"x\\u0000y\" }}"
    );
    assert_rejected(&body, 8);
}

#[test]
fn a_nul_character_in_a_command_is_located() {
    let body = format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\\u0000\"");
    assert_rejected(&body, 7);
}

#[test]
fn a_nul_character_in_a_cwd_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\ncwd = \"sub\\u0000\""
    );
    assert_rejected(&body, 8);
}

#[test]
fn an_empty_command_is_located() {
    let body = format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"  \"");
    assert_rejected(&body, 7);
}

#[test]
fn a_permanent_exit_code_no_process_can_return_is_located() {
    // Exit statuses are 0 to 255 (`exit 300` is 44), and 0 completes the task.
    for code in ["300", "-1", "0"] {
        let body = format!(
            "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\npermanent_exit_codes = [2, {code}]"
        );
        let stderr = assert_rejected(&body, 8);
        assert!(stderr.contains(code), "{stderr}");
    }
}

#[test]
fn a_workflow_file_larger_than_the_limit_is_refused_unread() {
    let sandbox = Sandbox::new();
    // Valid TOML: a workflow, then 17 MiB of comment.
    let mut body = format!("name = \"w\"\n{GOOD_TASK}");
    let comment = format!("# {}\n", "x".repeat(1022));
    for _ in 0..(17 * 1024) {
        body.push_str(&comment);
    }
    sandbox.write("wf.toml", &body);
    let output = sandbox.run(&["run", "wf.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("wf.toml") && stderr.contains("16 MiB"),
        "{stderr}"
    );
    assert!(!sandbox.path("ran").exists());
}

#[test]
fn a_name_with_a_control_character_is_located() {
    let body = format!("name = \"two\\nlines\"\n{GOOD_TASK}");
    let stderr = assert_rejected(&body, 1);
    assert!(stderr.contains("control characters"), "{stderr}");
}

#[test]
fn a_name_longer_than_256_bytes_is_located_and_256_is_accepted() {
    let body = format!("name = \"{}\"\n{GOOD_TASK}", "n".repeat(257));
    let stderr = assert_rejected(&body, 1);
    assert!(
        stderr.contains("`name` is 257 bytes long; at most 256"),
        "{stderr}"
    );
    // The message quotes the limit, not the 257-byte name.
    assert!(!stderr.contains(&"n".repeat(257)), "{stderr}");

    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        &format!("name = \"{}\"\n{GOOD_TASK}", "n".repeat(256)),
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(sandbox.path("ran").exists());
}

/// Linux's limit on one argument or environment string, `MAX_ARG_STRLEN`, with its NUL.
const MAX_ARG_STRLEN: usize = 131_072;

/// The longest `run`: one argument, less its NUL and the 59 bytes of
/// `read -r _ || exit 125; exec </dev/null; trap '' TTIN TTOU; ` cairn puts in front of it.
const MAX_RUN_BYTES: usize = MAX_ARG_STRLEN - 1 - 59;

/// A `run` of exactly `len` bytes that touches `ran` (the rest is a shell comment).
fn command_of_len(len: usize) -> String {
    let head = "touch ran # ";
    format!("{head}{}", "x".repeat(len - head.len()))
}

#[test]
fn a_command_longer_than_one_argument_may_be_is_located() {
    let run = command_of_len(MAX_ARG_STRLEN);
    let body = format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"big\"\nrun = \"{run}\"");
    let stderr = assert_rejected(&body, 7);
    assert!(
        stderr.contains("task `big`: `run` is 131072 bytes long"),
        "{stderr}"
    );
    assert!(
        stderr.contains("131071 bytes"),
        "the limit is named: {stderr}"
    );
    // One byte over what fits beside cairn's `trap` prefix is refused too.
    let run = command_of_len(MAX_RUN_BYTES + 1);
    let body = format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"big\"\nrun = \"{run}\"");
    let stderr = assert_rejected(&body, 7);
    assert!(
        stderr.contains(&format!(
            "is {} bytes long; a `run` may be at most {MAX_RUN_BYTES} bytes",
            MAX_RUN_BYTES + 1
        )),
        "{stderr}"
    );
}

#[test]
fn an_env_entry_longer_than_one_string_may_be_is_located() {
    // The command gets `BIG=<value>`: 4 bytes of name and `=` count too.
    let value = "v".repeat(MAX_ARG_STRLEN - 4);
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\nenv = {{ BIG = \"{value}\" }}"
    );
    let stderr = assert_rejected(&body, 8);
    assert!(
        stderr.contains(
            "task `b`: environment variable `BIG` (passed as `BIG=value`) is 131072 bytes long"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("131071 bytes"),
        "the limit is named: {stderr}"
    );
}

#[test]
fn a_command_and_an_env_entry_just_under_the_limit_run() {
    let sandbox = Sandbox::new();
    let run = command_of_len(MAX_RUN_BYTES);
    let value = "v".repeat(MAX_ARG_STRLEN - 1 - 4);
    sandbox.write(
        "wf.toml",
        &format!(
            "name = \"w\"\n[[task]]\nid = \"big\"\nrun = \"{run}\"\n[[task]]\nid = \"env\"\nrun = \"printf %s \\\"$BIG\\\" | wc -c > big.len\"\nenv = {{ BIG = \"{value}\" }}\n"
        ),
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(sandbox.path("ran").exists(), "the longest command ran");
    assert_eq!(
        sandbox.read("big.len").trim(),
        (MAX_ARG_STRLEN - 5).to_string()
    );
}

#[test]
fn an_env_name_cairn_sets_itself_is_located() {
    for name in ["CAIRN_RUN_ID", "CAIRN_SOMETHING_NEW"] {
        let body = format!(
            "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\nenv = {{ OK = \"1\", {name} = \"mine\" }}"
        );
        let stderr = assert_rejected(&body, 8);
        assert!(
            stderr.contains(&format!("environment variable name `{name}` is not valid")),
            "{stderr}"
        );
        assert!(
            stderr.contains("starting with `CAIRN_` are cairn's own"),
            "{stderr}"
        );
    }
}

/// The longest `--input`: each command gets `CAIRN_INPUT=<input>`, one environment entry.
const MAX_INPUT_BYTES: usize = MAX_ARG_STRLEN - 1 - "CAIRN_INPUT=".len();

/// An `--input` the OS could not pass to the commands is refused before anything starts
/// (review 51 F17: the run began and every task failed to start, on every resume too); the
/// longest one that fits reaches the commands whole.
#[test]
fn an_input_longer_than_one_environment_entry_may_be_is_refused_before_the_run() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"len\"\nrun = \"printf %s \\\"$CAIRN_INPUT\\\" | wc -c > input.len\"\n",
    );
    let too_long = "i".repeat(MAX_INPUT_BYTES + 1);
    for args in [
        vec!["run", "wf.toml", "--input", &too_long],
        vec![
            "jobs", "add", "wf.toml", "j", "--every", "1h", "--input", &too_long,
        ],
    ] {
        let refused = sandbox.run(&args);
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{}: {stderr}", args[0]);
        assert!(
            stderr.contains(&format!(
                "--input is {} bytes long; it may be at most {MAX_INPUT_BYTES} bytes",
                MAX_INPUT_BYTES + 1
            )),
            "{stderr}"
        );
        assert!(stderr.contains("`CAIRN_INPUT=...`"), "{stderr}");
        assert!(
            stderr.len() < 1000,
            "the input is not quoted back: {stderr}"
        );
    }
    assert!(
        !sandbox.path(".cairn").exists(),
        "nothing began: no run, no job, not even the state folder"
    );

    let longest = "i".repeat(MAX_INPUT_BYTES);
    let ran = sandbox.run(&["run", "wf.toml", "--input", &longest]);
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    assert_eq!(
        sandbox.read("input.len").trim(),
        MAX_INPUT_BYTES.to_string()
    );
}

/// A value of the wrong type is explained in a workflow author's words: how to write that
/// key's value, and no Rust type names.
#[test]
fn a_value_of_the_wrong_type_says_how_to_write_it() {
    for (line, expected) in [
        ("depends_on = \"ok\"", "`depends_on = [\"build\"]`"),
        ("timeout = 30", "`timeout = \"30s\"`"),
        ("run = [\"echo\", \"hi\"]", "`run = \"echo hi\"`"),
        ("max_attempts = 99999999999", "from 0 to 4294967295"),
        (
            "permanent_exit_codes = [99999999999]",
            "`permanent_exit_codes = [3]`",
        ),
    ] {
        let body = format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\n{line}");
        let body = if line.starts_with("run") {
            body
        } else {
            format!("{body}\nrun = \"touch ran\"")
        };
        let stderr = assert_rejected(&body, 7);
        assert!(stderr.contains(expected), "{line}: {stderr}");
        assert!(
            !stderr.contains("u32") && !stderr.contains("i32"),
            "{line}: {stderr}"
        );
    }
    let body = "name = \"w\"\nretry_delay = 5\n[[task]]\nid = \"b\"\nrun = \"touch ran\"";
    let stderr = assert_rejected(body, 2);
    assert!(stderr.contains("`retry_delay = \"30s\"`"), "{stderr}");
}

/// A runaway task id is clipped in its error, which stays one short line.
#[test]
fn an_overlong_task_id_is_clipped_in_its_error() {
    let id = "x".repeat(5000);
    let body = format!("name = \"w\"\n[[task]]\nid = \"{id}\"\nrun = \"touch ran\"");
    let stderr = assert_rejected(&body, 3);
    assert!(stderr.contains("longer than 100 bytes"), "{stderr}");
    assert!(stderr.len() < 400, "{} bytes: {stderr}", stderr.len());
}

/// A dependency named twice is a slip the checker names, like a duplicate task id.
#[test]
fn a_dependency_named_twice_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\ndepends_on = [\"ok\", \"ok\"]"
    );
    let stderr = assert_rejected(&body, 8);
    assert!(
        stderr.contains("task `b` lists `ok` twice in `depends_on`"),
        "{stderr}"
    );
}

/// `[task]` written with one bracket pair, and an `env` value that is not quoted text, are
/// explained too: how to write them, in TOML's words (array, table), not serde's (sequence,
/// map).
#[test]
fn a_single_bracket_task_and_a_bad_env_value_say_how_to_write_them() {
    let env_hint = "`env = { PROFILE = \"release\"";
    for (body, line, expected) in [
        (
            "name = \"w\"\n[task]\nid = \"b\"\nrun = \"touch ran\"".to_owned(),
            2,
            "(`task` takes one `[[task]]` table per task",
        ),
        (
            format!("name = \"w\"\n{GOOD_TASK}env = {{ JOBS = 4 }}"),
            5,
            env_hint,
        ),
        (
            format!("name = \"w\"\n{GOOD_TASK}env = \"JOBS=4\""),
            5,
            env_hint,
        ),
        (
            format!("name = \"w\"\n{GOOD_TASK}[task.env]\nDEBUG = true"),
            6,
            env_hint,
        ),
    ] {
        let stderr = assert_rejected(&body, line);
        assert!(stderr.contains(expected), "{body}: {stderr}");
        assert!(
            !stderr.contains("sequence") && !stderr.contains("map"),
            "{body}: {stderr}"
        );
    }
}
