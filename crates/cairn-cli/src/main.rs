//! The `cairn` binary; everything lives in the `cairn_cli` library.

fn main() -> std::process::ExitCode {
    cairn_cli::app::main_entry()
}
