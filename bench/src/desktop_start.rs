//! The desktop app's cold start and memory: the app's binary is started on a virtual display
//! (Xvfb) with an empty data folder, and timed from the spawn until its window reports the UI
//! interactive (the shell logs `window interactive` when the page has rendered and invoked it);
//! then the memory of the app and its WebKit processes is read from /proc.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the app `rounds` times and prints each round's start time and memory.
pub fn run(app: &Path, rounds: usize, settle: Duration) -> Result<(), String> {
    let display = Xvfb::start()?;
    let mut starts = Vec::new();
    for round in 1..=rounds {
        let data = std::env::temp_dir().join(format!(
            "curanet-desktop-start-{round}-{}",
            std::process::id()
        ));
        let started = Instant::now();
        let mut child = Command::new(app)
            .env("DISPLAY", &display.name)
            .env("CURANET_DESKTOP_DATA_DIR", &data)
            .env("RUST_LOG", "curanet_desktop_lib=info")
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", app.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("window interactive"));
        let elapsed = started.elapsed();
        if !ready {
            kill(&mut child);
            return Err("the app exited before its window was interactive".into());
        }
        std::thread::sleep(settle);
        let memory = tree_memory(child.id());
        kill(&mut child);
        let _ = std::fs::remove_dir_all(&data);
        println!(
            "round {round}: cold start to an interactive window {:.0} ms; memory after {:.0} s: \
             PSS {:.1} MiB, RSS {:.1} MiB ({} processes)",
            elapsed.as_secs_f64() * 1000.0,
            settle.as_secs_f64(),
            memory.pss_kib as f64 / 1024.0,
            memory.rss_kib as f64 / 1024.0,
            memory.processes
        );
        starts.push(elapsed);
    }
    starts.sort();
    if let Some(median) = starts.get(starts.len() / 2) {
        println!("median cold start: {:.0} ms", median.as_secs_f64() * 1000.0);
    }
    Ok(())
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The memory of a process and all its descendants (the app starts WebKit's web and network
/// processes).
#[derive(Debug, Default)]
struct Memory {
    pss_kib: u64,
    rss_kib: u64,
    processes: usize,
}

fn tree_memory(root: u32) -> Memory {
    let mut memory = Memory::default();
    for pid in descendants(root) {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        memory.processes += 1;
        for line in rollup.lines() {
            let kib = |prefix: &str| -> Option<u64> {
                line.strip_prefix(prefix)?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            };
            if let Some(v) = kib("Pss:") {
                memory.pss_kib += v;
            } else if let Some(v) = kib("Rss:") {
                memory.rss_kib += v;
            }
        }
    }
    memory
}

/// `root` and every process whose parent chain leads to it.
fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The parent is the second field after the parenthesised command name.
            let after = stat.rsplit_once(')')?.1;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree
}

/// A virtual display for the measured app, stopped on drop.
struct Xvfb {
    name: String,
    child: Child,
}

impl Xvfb {
    fn start() -> Result<Xvfb, String> {
        let number = 150 + std::process::id() % 50;
        let name = format!(":{number}");
        let child = Command::new("Xvfb")
            .args([&name, "-screen", "0", "1280x860x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("Xvfb (Debian package xvfb): {e}"))?;
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        let started = Instant::now();
        while !socket.exists() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("Xvfb did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Xvfb { name, child })
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
