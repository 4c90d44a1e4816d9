//! Suggested commands survive hostile input: every shell line round-trips through a real
//! shell unchanged, and no backtick can break a markdown fence. Also the input preview.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_checkpoint::{RunError, RunId};
use cairn_queue::Timestamp;
use cairn_runs::{
    CUT_MARKER, CommandRenderer, FailedRunPrompt, InputPreview, PREVIEW_CHARS, SuggestedCommand,
    shell_quote,
};

const NASTY: &[&str] = &[
    "plain",
    "",
    "two words",
    r#"say "hi""#,
    r"back\slash",
    "trailing\\",
    "\\\"",
    "`touch /tmp/cairn-injected`",
    "$(echo INJECTED)",
    "${HOME} and $HOME and $1 and $$",
    "```\nrm -rf /\n```",
    "``` close the fence",
    "new\nline",
    "it's 'single' quoted",
    "bang! and !! and !$",
    "tab\there",
    "ümlaut 日本語 🦀",
    "-n",
    "--force",
    "a;b|c&d>e<f",
    "*?[glob]~",
    "\"`$\\",
    "esc \u{1b}[2J bell \u{7} cr \r",
];

/// A script that prints each argument NUL-terminated, then a step separator.
fn arg_dump_script(dir: &Path) -> PathBuf {
    let path = dir.join("arg dump's $program");
    std::fs::write(
        &path,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\nprintf '\\001\\0'\n",
    )
    .expect("the script is written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("the script is executable");
    path
}

/// Runs `line` in `shell -c` and returns the argument vectors each step received.
fn run_in_shell(shell: &str, line: &str) -> Vec<Vec<String>> {
    let output = Command::new(shell)
        .arg("-c")
        .arg(line)
        .output()
        .expect("the shell runs");
    assert!(
        output.status.success(),
        "{shell} failed on {line:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8 output");
    let mut steps = Vec::new();
    let mut current = Vec::new();
    for field in text.split('\0') {
        if field == "\u{1}" {
            steps.push(std::mem::take(&mut current));
        } else {
            current.push(field.to_owned());
        }
    }
    // The text ends in a NUL, so the last split field is an empty remainder.
    assert_eq!(current, vec![String::new()], "output ends after a step");
    steps
}

fn expected_args(command: &SuggestedCommand) -> Vec<Vec<String>> {
    command
        .steps
        .iter()
        .map(|step| step[1..].to_vec())
        .collect()
}

fn all_commands(renderer: &CommandRenderer, input: &str) -> Vec<SuggestedCommand> {
    let run_id = RunId::new("01JD3ZK8Q2").expect("a valid id");
    vec![
        renderer.resume(&run_id),
        renderer.abandon(&run_id),
        renderer.run(input),
        renderer.run_forced(input),
        renderer.abandon_then_run(&run_id, input),
    ]
}

#[test]
fn shell_lines_round_trip_through_sh_and_bash() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let program = arg_dump_script(dir.path());
    let shells: Vec<&str> = ["sh", "bash"]
        .into_iter()
        .filter(|shell| Command::new(shell).arg("-c").arg("true").status().is_ok())
        .collect();
    assert!(shells.contains(&"sh"), "a POSIX sh is needed");
    for nasty_workflow in ["site.toml", "my `work` \"flow\".toml"] {
        for input in NASTY {
            let renderer = CommandRenderer::new(program.to_str().expect("a utf-8 path"))
                .workflow(nasty_workflow)
                .scope(*input);
            for command in all_commands(&renderer, input) {
                let line = command.shell();
                for shell in &shells {
                    assert_eq!(
                        run_in_shell(shell, &line),
                        expected_args(&command),
                        "{shell} changed the arguments of {line:?}"
                    );
                }
            }
        }
    }
    assert!(
        !Path::new("/tmp/cairn-injected").exists(),
        "a backtick in the input was executed"
    );
}

#[test]
fn quoted_arguments_escape_backslash_quote_backtick_and_dollar() {
    for input in NASTY {
        let quoted = shell_quote(input);
        if quoted == *input {
            assert!(!input.is_empty());
            assert!(
                !input.contains(['\\', '"', '`', '$', ' ', '\n', '!', '\'']),
                "{input:?} must be quoted"
            );
            continue;
        }
        // Walk the quoted form: inside double quotes, each of \ " ` $ must be escaped by a
        // backslash, and `!` only ever appears single-quoted outside them.
        let chars: Vec<char> = quoted.chars().collect();
        let mut in_double = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if in_double {
                match c {
                    '\\' => {
                        assert!(
                            matches!(chars.get(i + 1), Some('\\' | '"' | '`' | '$')),
                            "stray backslash in {quoted:?}"
                        );
                        i += 1;
                    }
                    '"' => in_double = false,
                    '`' | '$' | '!' => panic!("unescaped {c:?} in {quoted:?}"),
                    _ => {}
                }
            } else {
                match c {
                    '"' => in_double = true,
                    '\'' => {
                        assert_eq!(&chars[i..i + 3], &['\'', '!', '\''], "in {quoted:?}");
                        i += 2;
                    }
                    _ => panic!("unquoted {c:?} in {quoted:?}"),
                }
            }
            i += 1;
        }
        assert!(!in_double, "unterminated quote in {quoted:?}");
    }
}

/// Lines of `markdown` that would open or close a fence (up to three spaces, then three or
/// more backticks).
fn fence_lines(markdown: &str) -> Vec<&str> {
    markdown
        .lines()
        .filter(|line| {
            let trimmed = line.trim_start_matches(' ');
            line.len() - trimmed.len() <= 3 && trimmed.starts_with("```")
        })
        .collect()
}

#[test]
fn markdown_fences_cannot_be_broken_by_backticks() {
    let renderer = CommandRenderer::new("cairn").workflow("wf```.toml");
    for input in NASTY {
        for command in all_commands(&renderer, input) {
            let markdown = command.markdown();
            let fences = fence_lines(&markdown);
            assert_eq!(fences, vec!["```sh", "```"], "in {markdown:?}");
            let body = markdown
                .strip_prefix("```sh\n")
                .and_then(|rest| rest.strip_suffix("\n```"))
                .expect("one fenced block");
            assert_eq!(body, command.shell());
            let chars: Vec<char> = body.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                if *c == '`' {
                    assert_eq!(chars.get(i.wrapping_sub(1)), Some(&'\\'), "in {body:?}");
                }
            }
        }
    }
}

fn prompt(new_input: &str, prior_input: &str) -> FailedRunPrompt {
    FailedRunPrompt {
        run_id: RunId::new("r1").expect("a valid id"),
        workflow: "site`".into(),
        scope: "default".into(),
        failed_at: Some(Timestamp(1_700_000_000_000)),
        error: Some(RunError::new("task_failed", "exit ``` 2")),
        prior_input: InputPreview::new(prior_input),
        new_input: new_input.into(),
    }
}

#[test]
fn rendered_prompt_offers_three_escaped_ways_forward() {
    let renderer = CommandRenderer::new("cairn").workflow("site.toml");
    for input in NASTY {
        let prompt = prompt(input, "build A");
        let text = prompt.render(&renderer);
        assert!(text.contains("2023-11-14 22:13:20 UTC"), "{text}");
        if !input.contains(|c: char| c.is_control() && c != '\n' && c != '\t') {
            for way in prompt.ways_forward() {
                assert!(text.contains(&way.command(&renderer).shell()), "{text}");
            }
        }
        assert!(text.contains("cairn resume r1"));
        assert!(
            !text.contains(|c: char| c.is_control() && c != '\n' && c != '\t'),
            "control characters reach the terminal: {text:?}"
        );

        let markdown = prompt.render_markdown(&renderer);
        let fences = fence_lines(&markdown);
        assert_eq!(fences.len(), 6, "three fenced blocks in {markdown}");
        for pair in fences.chunks(2) {
            assert_eq!(pair[0].trim_start(), "```sh");
            assert_eq!(pair[1].trim_start(), "```");
        }
    }
}

#[test]
fn preview_keeps_160_chars_and_marks_the_cut() {
    let exact = "é".repeat(PREVIEW_CHARS);
    let preview = InputPreview::new(&exact);
    assert!(!preview.cut);
    assert_eq!(preview.to_string(), exact);

    let one_more = format!("{exact}x");
    let preview = InputPreview::new(&one_more);
    assert!(preview.cut);
    assert_eq!(preview.text, exact);
    assert_eq!(preview.total_chars, PREVIEW_CHARS + 1);
    assert_eq!(preview.to_string(), format!("{exact}{CUT_MARKER}"));

    // Four-byte characters: the cut never lands inside one.
    let crabs = "🦀".repeat(500);
    let preview = InputPreview::new(&crabs);
    assert_eq!(preview.text.len(), PREVIEW_CHARS * 4);
    assert!(preview.text.chars().all(|c| c == '🦀'));

    let empty = InputPreview::new("");
    assert!(!empty.cut);
    assert_eq!(empty.to_string(), "");
}
