//! The `aurora` binary: parses arguments and hands over to the chosen face.

fn main() -> std::process::ExitCode {
    aurora::cli::main()
}
