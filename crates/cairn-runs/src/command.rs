//! Suggested command lines: the ways forward a decision offers, rendered for a shell and for
//! markdown so that no input (quotes, backslashes, backticks, `$`) can break out of them.

use cairn_checkpoint::RunId;
use serde::{Deserialize, Serialize};

/// Builds the command lines a decision suggests, for one program and workflow.
///
/// The CLI passes its own program name and the workflow file; an HTTP API can pass whatever
/// its clients run. The lines have these shapes (`[...]` only when configured):
///
/// - resume: `PROGRAM resume RUN_ID`
/// - abandon: `PROGRAM abandon RUN_ID`
/// - run: `PROGRAM run [WORKFLOW] [--scope SCOPE] --input INPUT`
/// - forced run: `PROGRAM run [WORKFLOW] [--scope SCOPE] --force --input INPUT`
///
/// # Examples
///
/// ```
/// use cairn_runs::CommandRenderer;
/// let renderer = CommandRenderer::new("cairn").workflow("site.toml");
/// let line = renderer.run_forced("say \"hi\" to $USER").shell();
/// assert_eq!(line, r#"cairn run site.toml --force --input "say \"hi\" to \$USER""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRenderer {
    program: String,
    workflow: Option<String>,
    scope: Option<String>,
}

impl Default for CommandRenderer {
    /// Renders for the `cairn` program with no workflow path.
    fn default() -> Self {
        CommandRenderer::new("cairn")
    }
}

impl CommandRenderer {
    /// A renderer for `program` (for example `cairn`, or a path to it).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::CommandRenderer;
    ///
    /// let id = RunId::new("r1")?;
    /// let installed = CommandRenderer::new("/opt/cairn/bin/cairn");
    /// assert_eq!(installed.resume(&id).shell(), "/opt/cairn/bin/cairn resume r1");
    /// // The program is quoted like any other argument.
    /// let spaced = CommandRenderer::new("/opt/my tools/cairn");
    /// assert_eq!(spaced.resume(&id).shell(), r#""/opt/my tools/cairn" resume r1"#);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn new(program: impl Into<String>) -> CommandRenderer {
        CommandRenderer {
            program: program.into(),
            workflow: None,
            scope: None,
        }
    }

    /// Names the workflow (a file path for the CLI) in `run` lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::CommandRenderer;
    ///
    /// assert_eq!(CommandRenderer::new("cairn").run("B").shell(), "cairn run --input B");
    /// let renderer = CommandRenderer::new("cairn").workflow("flows/site.toml");
    /// assert_eq!(renderer.run("B").shell(), "cairn run flows/site.toml --input B");
    /// ```
    pub fn workflow(mut self, workflow: impl Into<String>) -> CommandRenderer {
        self.workflow = Some(workflow.into());
        self
    }

    /// Adds `--scope SCOPE` to `run` lines.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::CommandRenderer;
    ///
    /// let renderer = CommandRenderer::new("cairn").workflow("site.toml").scope("team a");
    /// let line = renderer.run("B").shell();
    /// assert_eq!(line, r#"cairn run site.toml --scope "team a" --input B"#);
    /// ```
    pub fn scope(mut self, scope: impl Into<String>) -> CommandRenderer {
        self.scope = Some(scope.into());
        self
    }

    /// `PROGRAM resume RUN_ID`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::CommandRenderer;
    ///
    /// let command = CommandRenderer::new("cairn").resume(&RunId::new("r1")?);
    /// assert_eq!(command.steps, vec![vec!["cairn", "resume", "r1"]]);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn resume(&self, run_id: &RunId) -> SuggestedCommand {
        SuggestedCommand::single(vec![
            self.program.clone(),
            "resume".to_owned(),
            run_id.to_string(),
        ])
    }

    /// `PROGRAM abandon RUN_ID`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::CommandRenderer;
    ///
    /// // The workflow and scope are only for `run` lines.
    /// let renderer = CommandRenderer::new("cairn").workflow("site.toml").scope("ci");
    /// assert_eq!(renderer.abandon(&RunId::new("r1")?).shell(), "cairn abandon r1");
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn abandon(&self, run_id: &RunId) -> SuggestedCommand {
        SuggestedCommand::single(vec![
            self.program.clone(),
            "abandon".to_owned(),
            run_id.to_string(),
        ])
    }

    /// `PROGRAM run [WORKFLOW] [--scope SCOPE] --input INPUT`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::CommandRenderer;
    ///
    /// let command = CommandRenderer::new("cairn").run("it's $HOME");
    /// // The steps hold the input as it is; the shell line quotes it.
    /// assert_eq!(command.steps[0].last().map(String::as_str), Some("it's $HOME"));
    /// assert_eq!(command.shell(), r#"cairn run --input "it's \$HOME""#);
    /// ```
    pub fn run(&self, input: &str) -> SuggestedCommand {
        SuggestedCommand::single(self.run_args(input, false))
    }

    /// `PROGRAM run [WORKFLOW] [--scope SCOPE] --force --input INPUT`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::CommandRenderer;
    ///
    /// let line = CommandRenderer::new("cairn").scope("ci").run_forced("B").shell();
    /// assert_eq!(line, "cairn run --scope ci --force --input B");
    /// ```
    pub fn run_forced(&self, input: &str) -> SuggestedCommand {
        SuggestedCommand::single(self.run_args(input, true))
    }

    /// `PROGRAM abandon RUN_ID && PROGRAM run ... --input INPUT`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::RunId;
    /// use cairn_runs::CommandRenderer;
    ///
    /// let renderer = CommandRenderer::new("cairn").workflow("site.toml");
    /// let command = renderer.abandon_then_run(&RunId::new("r1")?, "build B");
    /// assert_eq!(command.steps.len(), 2);
    /// // The run starts only if the abandon succeeded.
    /// assert_eq!(command.shell(), r#"cairn abandon r1 && cairn run site.toml --input "build B""#);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn abandon_then_run(&self, run_id: &RunId, input: &str) -> SuggestedCommand {
        let mut steps = self.abandon(run_id).steps;
        steps.extend(self.run(input).steps);
        SuggestedCommand { steps }
    }

    fn run_args(&self, input: &str, force: bool) -> Vec<String> {
        let mut args = vec![self.program.clone(), "run".to_owned()];
        if let Some(workflow) = &self.workflow {
            args.push(workflow.clone());
        }
        if let Some(scope) = &self.scope {
            args.push("--scope".to_owned());
            args.push(scope.clone());
        }
        if force {
            args.push("--force".to_owned());
        }
        args.push("--input".to_owned());
        args.push(input.to_owned());
        args
    }
}

/// A suggested command: one or more steps, each an argument vector, run one after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestedCommand {
    /// The steps, in order; each is a program followed by its arguments, unquoted.
    pub steps: Vec<Vec<String>>,
}

impl SuggestedCommand {
    fn single(args: Vec<String>) -> SuggestedCommand {
        SuggestedCommand { steps: vec![args] }
    }

    /// The command as one POSIX shell line: every argument quoted with [`shell_quote`],
    /// steps joined with ` && ` so a later step runs only if the earlier one succeeded.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::SuggestedCommand;
    ///
    /// let command = SuggestedCommand {
    ///     steps: vec![
    ///         vec!["cairn".into(), "abandon".into(), "r1".into()],
    ///         vec!["cairn".into(), "run".into(), "--input".into(), "hi!".into()],
    ///     ],
    /// };
    /// assert_eq!(command.shell(), r#"cairn abandon r1 && cairn run --input "hi"'!'"#);
    /// ```
    pub fn shell(&self) -> String {
        self.steps
            .iter()
            .map(|args| {
                args.iter()
                    .map(|arg| shell_quote(arg))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// The shell line inside a fenced markdown code block (info string `sh`).
    ///
    /// Every backtick in the line is escaped by [`shell_quote`], so no run of backticks can
    /// close the fence; the fence is still made longer than any backtick run, as a second
    /// guard.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_runs::CommandRenderer;
    /// let md = CommandRenderer::new("cairn").run("```rm -rf /```").markdown();
    /// assert_eq!(md, "```sh\ncairn run --input \"\\`\\`\\`rm -rf /\\`\\`\\`\"\n```");
    /// ```
    pub fn markdown(&self) -> String {
        let line = self.shell();
        let fence = "`".repeat((longest_backtick_run(&line) + 1).max(3));
        format!("{fence}sh\n{line}\n{fence}")
    }
}

fn longest_backtick_run(text: &str) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for c in text.chars() {
        if c == '`' {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

/// Quotes one argument for a POSIX shell.
///
/// Plain words (ASCII letters, digits and `_ - . / : @ , + %`) stay as they are. Anything
/// else is put in double quotes with `\`, `"`, `` ` `` and `$` escaped by a backslash, so
/// nothing inside is expanded or substituted. `!` is emitted as `'!'` outside the double
/// quotes, because interactive bash expands history even inside double quotes and a
/// backslash before it would be kept literally.
///
/// # Examples
///
/// ```
/// use cairn_runs::shell_quote;
/// assert_eq!(shell_quote("plain-word_1.txt"), "plain-word_1.txt");
/// assert_eq!(shell_quote(""), "\"\"");
/// assert_eq!(shell_quote(r#"a\b"c`d$e"#), r#""a\\b\"c\`d\$e""#);
/// assert_eq!(shell_quote("hi!"), r#""hi"'!'"#);
/// assert_eq!(shell_quote("!x"), r#"'!'"x""#);
/// ```
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(is_plain) {
        return arg.to_owned();
    }
    if arg.is_empty() {
        return "\"\"".to_owned();
    }
    let mut out = String::with_capacity(arg.len() + 2);
    let mut in_double = false;
    for c in arg.chars() {
        if c == '!' {
            if in_double {
                out.push('"');
                in_double = false;
            }
            out.push_str("'!'");
            continue;
        }
        if !in_double {
            out.push('"');
            in_double = true;
        }
        if matches!(c, '\\' | '"' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    if in_double {
        out.push('"');
    }
    out
}

fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | ',' | '+' | '%')
}
