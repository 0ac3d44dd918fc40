//! `cogbroker`: the daemon and the CLI. Parses the command line, runs it, prints a failure once
//! (with its causes, `{:#}`) on stderr and maps it to the documented exit code.

use std::io::Write as _;
use std::process::ExitCode;

use cogbroker::cli;

fn main() -> ExitCode {
    let parsed = match cli::parse(cli::helpers::normalize_args(std::env::args_os())) {
        Ok(parsed) => parsed,
        Err(error) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let code = if error.use_stderr() {
                cli::EXIT_USAGE
            } else {
                cli::EXIT_OK
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli::run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr().lock(), "cogbroker: {error:#}");
            ExitCode::from(cli::exit_code(&error))
        }
    }
}
