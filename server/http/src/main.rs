//! The `curanet` binary.

fn main() -> std::process::ExitCode {
    curanet_http::cli::main()
}
