//! The README's five-minute guide is `examples/five_minutes.rs` (which `cargo test` builds):
//! its `main.rs` block must be that file, and its `Cargo.toml` step must name what the file
//! uses.

use std::path::Path;

const MARKER: &str = "<!-- five-minutes:main.rs -->";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `rust` block right after the marker.
fn readme_main(readme: &str) -> &str {
    let after = readme
        .split_once(MARKER)
        .map(|(_, after)| after)
        .expect("the README marks the guide's main.rs");
    let body = after
        .strip_prefix("\n```rust\n")
        .expect("a rust block follows the marker");
    body.split_once("\n```\n")
        .map(|(code, _)| code)
        .expect("the rust block ends")
}

/// The example without its leading `//!` header.
fn example_code(example: &str) -> &str {
    let mut rest = example;
    while let Some((line, tail)) = rest.split_once('\n') {
        if !line.starts_with("//!") {
            break;
        }
        rest = tail;
    }
    rest.trim_matches('\n')
}

#[test]
fn the_readme_main_rs_is_the_five_minutes_example() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = read(&crate_dir.join("../../README.md"));
    let example = read(&crate_dir.join("examples/five_minutes.rs"));
    assert_eq!(
        readme_main(&readme).trim_matches('\n'),
        example_code(&example)
    );
}

#[test]
fn the_readme_dependencies_cover_what_main_rs_uses() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = read(&crate_dir.join("../../README.md"));
    let guide = readme
        .split_once("## Instrumenting a Rust agent in five minutes")
        .and_then(|(_, rest)| rest.split_once(MARKER))
        .map(|(steps, _)| steps)
        .expect("the guide's steps before main.rs");
    let code = readme_main(&readme);
    for (used, dependency) in [
        ("lookout_agent::", "lookout-agent = "),
        ("purpleflea_client::", "purpleflea-client = "),
        ("tracing::", "tracing = "),
        ("#[tokio::main]", "\"macros\", \"rt-multi-thread\""),
        ("tokio::time::", "\"time\""),
    ] {
        if code.contains(used) {
            assert!(guide.contains(dependency), "{used} needs {dependency}");
        }
    }
}
