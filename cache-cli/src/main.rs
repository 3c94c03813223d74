//! `scancache`, the command line front end.
//!
//! Not implemented yet: the commands arrive with the CLI issue. Until then the binary says
//! so and fails, rather than pretending to do anything.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("scancache: no commands are implemented yet (see the project's open issues)");
    ExitCode::FAILURE
}
