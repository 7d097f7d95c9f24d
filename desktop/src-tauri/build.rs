//! Builds the UI (desktop/ui) when its sources changed, then lets Tauri embed `desktop/ui/dist`.

use std::path::Path;
use std::process::Command;

fn main() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(watched).display());
    }
    // Another checkout sharing this target folder (a CI clone) can reuse this script's last
    // run, whose UI was built in *that* checkout: a stamp in `dist`, missing here, makes cargo
    // run the script again. Its time is set in the past so that writing it does not count as
    // a change next time.
    let stamp = ui.join("dist").join(".built");
    println!("cargo:rerun-if-changed={}", stamp.display());
    build_ui(&ui);
    let file = std::fs::File::create(&stamp).expect("write desktop/ui/dist/.built");
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400))
        .expect("date desktop/ui/dist/.built");
    tauri_build::build()
}

/// `npm ci` (when node_modules is missing) and `npm run build`. Without npm the last build in
/// `dist` is used; without one either, a page that says how to build the UI, so that the Rust
/// side (and its tests) still compiles on a machine without Node.js.
fn build_ui(ui: &Path) {
    let dist = ui.join("dist");
    let npm = ui.join("package.json").exists()
        && Command::new("npm")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if npm {
        if !ui.join("node_modules").exists() {
            run(ui, &["ci", "--no-audit", "--no-fund"]);
        }
        run(ui, &["run", "build"]);
    } else if !dist.join("index.html").exists() {
        println!(
            "cargo:warning=npm not found: the desktop UI is not built (see desktop/ui/README.md)"
        );
        std::fs::create_dir_all(&dist).expect("create desktop/ui/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>CuraNet</title><p>The UI is not built: run \
             <code>npm ci &amp;&amp; npm run build</code> in desktop/ui, then rebuild.</p>",
        )
        .expect("write desktop/ui/dist/index.html");
    }
}

fn run(ui: &Path, args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(ui)
        .status()
        .expect("run npm");
    assert!(
        status.success(),
        "npm {} failed in {}",
        args.join(" "),
        ui.display()
    );
}
