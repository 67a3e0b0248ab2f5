//! The `skiff` command, built as this package's binary so that the end-to-end tests run the code
//! of this checkout: the same [`skiff_cli::main`] as `skiff-cli`'s `skiff`.
fn main() -> std::process::ExitCode {
    skiff_cli::main()
}
