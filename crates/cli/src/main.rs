//! The `skiff` binary: everything is in the library, [`skiff_cli::main`].
fn main() -> std::process::ExitCode {
    skiff_cli::main()
}
