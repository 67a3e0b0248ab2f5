//! `skiff-oci`: Skiff's OCI runtime plugin executable. This release runs it as the per-container
//! shim the [`skiff_oci::Runtime`] starts (`skiff-oci shim DIR ID RUNC`): it runs `runc run` for
//! the bundle in DIR, appends the output to `DIR/output.log` and records the exit in `DIR/exit`.
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("shim") if args.len() == 5 => {
            let code = skiff_oci::run_shim(Path::new(&args[2]), &args[3], Path::new(&args[4]));
            ExitCode::from(u8::try_from(code).unwrap_or(255))
        }
        _ => {
            eprintln!(
                "usage: skiff-oci shim DIR ID RUNC\n\
                 (runs one container's bundle in DIR under runc and records its exit; started by the plugin)"
            );
            ExitCode::from(2)
        }
    }
}
