//! `job`: a `wasi:cli/command` component for Skiff's Job tests.
//!
//! | first argument | behaviour |
//! |---|---|
//! | `ok` (or none) | prints `job done` and the `GREETING` variable, exits 0 |
//! | `fail` | prints to stderr, exits with code 3 |
//! | `trap` | panics (a trap) |
//! | `sleep N` | sleeps N milliseconds, then exits 0 |

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str).unwrap_or("ok") {
        "ok" => {
            let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".into());
            println!("job done: {greeting}");
        }
        "fail" => {
            eprintln!("job failing on purpose");
            std::process::exit(3);
        }
        "trap" => panic!("job asked to trap"),
        "sleep" => {
            let ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            println!("slept {ms} ms");
        }
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
