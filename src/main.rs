use std::process::ExitCode;

fn main() -> ExitCode {
    ballast::cli::main_entry().into()
}
