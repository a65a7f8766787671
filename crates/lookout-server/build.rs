//! Brings the web UI's chart library, uPlot, from the npm registry into `OUT_DIR`, where
//! `ui/mod.rs` embeds it. The version is pinned by `web/package-lock.json`; `npm ci` installs
//! exactly that, into `OUT_DIR` (never into the source tree), once per clean build.
//! Nothing from the package is committed to this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files the UI serves, under `node_modules/uplot/dist/`.
const FILES: &[&str] = &["uPlot.iife.min.js", "uPlot.min.css"];

fn main() {
    println!("cargo:rerun-if-changed=web/package.json");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-env-changed=NPM");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    let web = out.join("web");
    std::fs::create_dir_all(&web).expect("OUT_DIR is writable");
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(manifest.join("web").join(f), web.join(f))
            .unwrap_or_else(|e| panic!("copying web/{f} into OUT_DIR: {e}"));
    }
    let dist = web.join("node_modules/uplot/dist");
    if !FILES.iter().all(|f| dist.join(f).exists()) {
        npm_ci(&web);
    }
    for f in FILES {
        std::fs::copy(dist.join(f), out.join(f))
            .unwrap_or_else(|e| panic!("npm ci did not install uplot/dist/{f}: {e}"));
    }
}

fn npm_ci(dir: &Path) {
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    let status = Command::new(&npm)
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(dir)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`{npm} ci` failed ({s}) installing the web UI's chart library (uPlot, pinned by \
             crates/lookout-server/web/package-lock.json) from the npm registry: check that \
             the registry is reachable (npm config get registry)"
        ),
        Err(e) => panic!(
            "the web UI's chart library (uPlot) comes from the npm registry, and `{npm}` could \
             not be run ({e}): install Node.js and npm (Debian: apt-get install nodejs npm), \
             or set NPM to its path, then build again"
        ),
    }
}
