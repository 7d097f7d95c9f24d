//! What the end-to-end test needs around the app: a virtual display (Xvfb), `tauri-driver`
//! with WebKitGTK's WebDriver, a WebDriver session on the real app binary, screenshots of
//! the screen, and waits that poll the window until a condition holds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};

/// How long one step may take before the test fails (a cold WebKit start is the slowest).
const STEP: Duration = Duration::from_secs(45);

/// The programs the test drives; `None` names the first one missing.
pub struct Tools {
    pub tauri_driver: PathBuf,
    pub xvfb: PathBuf,
    /// ImageMagick's `import`, for screenshots (WebDriver's own can return a stale frame).
    pub import: Option<PathBuf>,
}

impl Tools {
    /// Finds the tools on PATH (and `tauri-driver` in cargo's bin folder or `CURANET_TAURI_DRIVER`).
    pub fn find() -> Result<Tools, String> {
        let cargo_bin = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map(|h| h.join("bin/tauri-driver"));
        let tauri_driver = std::env::var_os("CURANET_TAURI_DRIVER")
            .map(PathBuf::from)
            .or_else(|| on_path("tauri-driver"))
            .or(cargo_bin.filter(|p| p.exists()))
            .ok_or("tauri-driver (cargo install tauri-driver --locked)")?;
        on_path("WebKitWebDriver").ok_or("WebKitWebDriver (Debian package webkit2gtk-driver)")?;
        let xvfb = on_path("Xvfb").ok_or("Xvfb (Debian package xvfb)")?;
        Ok(Tools {
            tauri_driver,
            xvfb,
            import: on_path("import"),
        })
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A free loopback port (the OS picks it; the listener is closed before use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child process killed with its whole process group when dropped (tauri-driver starts
/// WebKitWebDriver, which starts the app).
pub struct Process(Child);

impl Process {
    fn spawn(command: &mut Command) -> Process {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Process(child)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// A virtual X display for the window.
pub struct Display {
    pub name: String,
    _xvfb: Process,
}

impl Display {
    /// Starts Xvfb on a display number of its own.
    pub fn start(tools: &Tools) -> Display {
        // One display per test of this process (they run side by side).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let number = 100
            + (std::process::id() % 400) * 4
            + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 4;
        let name = format!(":{number}");
        let xvfb = Process::spawn(
            Command::new(&tools.xvfb)
                .args([&name, "-screen", "0", "1280x860x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let socket = format!("/tmp/.X11-unix/X{number}");
        let started = Instant::now();
        while !Path::new(&socket).exists() {
            assert!(started.elapsed() < STEP, "Xvfb did not start on {name}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Display { name, _xvfb: xvfb }
    }
}

/// `tauri-driver` serving WebDriver for the app on the display.
pub struct Driver {
    pub port: u16,
    _process: Process,
}

impl Driver {
    /// Starts tauri-driver; the app it launches inherits `env` (its data folder, log level).
    pub fn start(tools: &Tools, display: &Display, env: &[(&str, &Path)]) -> Driver {
        let port = free_port();
        let native = free_port();
        let mut command = Command::new(&tools.tauri_driver);
        command
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &display.name)
            // Software rendering: no GPU under Xvfb.
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("RUST_LOG", "info");
        // The driver's and the app's output, to read when a step fails.
        let log = std::env::temp_dir().join(format!("curanet-desktop-e2e-{port}.log"));
        let file = std::fs::File::create(&log).expect("the driver's log");
        command
            .stdout(file.try_clone().expect("the driver's log"))
            .stderr(file);
        eprintln!("the app's log: {}", log.display());
        for (k, v) in env {
            command.env(k, v);
        }
        let process = Process::spawn(&mut command);
        // tauri-driver listens at once, but forwards a session to WebKitWebDriver, which it
        // starts beside it: both must listen before the session is asked for.
        let started = Instant::now();
        for (who, p) in [("tauri-driver", port), ("WebKitWebDriver", native)] {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(started.elapsed() < STEP, "{who} did not listen on {p}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Driver {
            port,
            _process: process,
        }
    }

    /// A WebDriver session on `application` (the app's binary), its main window ready.
    pub async fn session(&self, application: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "wry".into());
        capabilities.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": application }),
        );
        // A loaded machine may still be starting WebKitWebDriver's side: a few tries.
        let mut tries = 0;
        let client = loop {
            tries += 1;
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{}", self.port))
                .await
            {
                Ok(client) => break client,
                Err(e) if tries < 3 => {
                    eprintln!("no WebDriver session yet ({e}); trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => panic!("a WebDriver session on the app: {e}"),
            }
        };
        element(&client, "#status").await;
        client
    }
}

/// Waits until `css` matches an element and returns it.
pub async fn element(client: &Client, css: &str) -> Element {
    client
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css} within {STEP:?}: {e}"))
}

/// Waits until the text of `css` satisfies `ok`; returns the text.
pub async fn text_until(client: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < STEP {
        if let Ok(found) = client.find(Locator::Css(css)).await
            && let Ok(text) = found.text().await
        {
            if ok(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("{css} never reached the expected text; last: {last:?}");
}

/// Replaces the value of the input `css` with `value`.
pub async fn type_into(client: &Client, css: &str, value: &str) {
    let input = element(client, css).await;
    input.clear().await.expect("clear");
    input.send_keys(value).await.expect("type");
}

/// Clicks `css`, first brought to the middle of the view (clear of the sticky status bar).
pub async fn click(client: &Client, css: &str) {
    scroll_to(client, css).await;
    element(client, css).await.click().await.expect("click");
}

/// A picture of the whole virtual screen (the window as people see it) into `dir/name.png`.
pub fn screenshot(tools: &Tools, display: &Display, dir: Option<&Path>, name: &str) {
    let (Some(dir), Some(import)) = (dir, &tools.import) else {
        return;
    };
    std::fs::create_dir_all(dir).expect("screenshot folder");
    // Give the last paint a moment to reach the screen.
    std::thread::sleep(Duration::from_millis(400));
    let status = Command::new(import)
        .args(["-window", "root"])
        .arg(dir.join(format!("{name}.png")))
        .env("DISPLAY", &display.name)
        .status()
        .expect("run import");
    assert!(status.success(), "screenshot {name}");
}

/// Scrolls the window so that `css` is in the middle of the view (for screenshots).
pub async fn scroll_to(client: &Client, css: &str) {
    element(client, css).await;
    let script = "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})";
    client
        .execute(script, vec![serde_json::Value::from(css)])
        .await
        .expect("scroll");
}
