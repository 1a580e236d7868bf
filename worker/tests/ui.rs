//! The status page (`peergrid node --ui ADDR`) as a volunteer meets it:
//!
//! - served by a real node of an in-process grid that just ran jobs, fetched
//!   over plain HTTP: the job and how it ended, the node's peer id, its
//!   peers, a hostile string from a module escaped, the security headers,
//!   404/405/421 for everything else, and `/status.json` with the same data;
//! - the real binary: `--ui 127.0.0.1:0` serves it and says where, a
//!   non-loopback address is refused naming `--ui-public`, `config show`
//!   prints the `ui` key;
//! - rendered by a real headless browser (Debian's chromium, installed by
//!   `scripts/install-chromium.sh` when missing), with a screenshot kept in
//!   `target/test-artifacts/status-page.png`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peergrid_proto::{Identity, PeerId, sha256};
use peergrid_worker::ui::UiConfig;
use peergrid_worker::{GridNode, LocalGrid, NodeConfig, NodeError};
use scheduler_lib::{Job, Limits, Scheduler, SchedulerConfig};
use serde_json::Value;

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

/// The hostile name a module imports: HTML that would run if the page did
/// not escape the outcome text that names it.
const HOSTILE: &str = "<script>alert('peergrid')</script>";

/// A module importing a function named [`HOSTILE`] from "env": every
/// worker refuses it as an invalid module whose error text names the
/// import. Written out byte by byte (no WAT compiler in this crate).
fn hostile_module() -> Vec<u8> {
    let mut import = vec![1u8, 3];
    import.extend_from_slice(b"env");
    import.push(u8::try_from(HOSTILE.len()).unwrap());
    import.extend_from_slice(HOSTILE.as_bytes());
    import.extend_from_slice(&[0, 0]); // a function of type 0
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]); // type 0: () -> ()
    wasm.push(2);
    wasm.push(u8::try_from(import.len()).unwrap());
    wasm.extend_from_slice(&import);
    wasm
}

/// Three nodes that know each other (the others bootstrap from the first);
/// the first serves its status page on a free loopback port.
async fn grid_with_ui() -> LocalGrid {
    let mut first = NodeConfig::local();
    first.ui = Some(UiConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        public: false,
    });
    let first = GridNode::start(first).await.unwrap();
    let mut nodes = vec![];
    for _ in 0..2 {
        let mut config = NodeConfig::local();
        config.gossip.bootstrap = vec![first.addr.to_string()];
        nodes.push(GridNode::start(config).await.unwrap());
    }
    nodes.insert(0, first);
    LocalGrid { nodes }
}

fn scheduler(grid: &LocalGrid, identity: Identity) -> Scheduler {
    Scheduler::new(
        identity,
        SchedulerConfig {
            puzzle_bits: peergrid_worker::LOCAL_PUZZLE_BITS,
            peers: grid.addrs(),
            job_timeout: Duration::from_secs(60),
            ..SchedulerConfig::default()
        },
    )
}

/// Runs the hash chain and the hostile module on every node of `grid`;
/// returns the submitter's peer id.
async fn run_jobs(grid: &LocalGrid) -> PeerId {
    let identity = Identity::generate();
    let submitter = identity.peer_id();
    let scheduler = scheduler(grid, identity);
    let job = Job::new(peergrid_jobs::HASHCHAIN.wasm)
        .stdin(peergrid_jobs::HASHCHAIN.sample_stdin)
        .args(peergrid_jobs::HASHCHAIN.sample_args.iter().copied())
        .replicas(3);
    let report = scheduler.submit(&job).await.unwrap();
    assert!(report.verdict.accepted().is_some(), "{:?}", report.verdict);
    let hostile = Job::new(hostile_module())
        .limits(Limits {
            fuel: 1_000_000,
            ..Limits::default()
        })
        .replicas(3);
    // Every worker refuses the module the same way: an agreed failure.
    scheduler.submit(&hostile).await.unwrap();
    submitter
}

/// One HTTP/1.1 exchange with `addr`: the status code, the header block
/// (lower-cased) and the body. Off the async runtime.
async fn http(addr: SocketAddr, method: &str, path: &str, host: &str) -> (u16, String, String) {
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let code = head.split(' ').nth(1).unwrap().parse().unwrap();
        (code, head.to_ascii_lowercase(), body.to_string())
    })
    .await
    .unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http(addr, "GET", path, &addr.to_string()).await
}

/// `/status.json`, once the membership table lists `n` peers.
async fn status_json_with_peers(addr: SocketAddr, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, _, body) = get(addr, "/status.json").await;
        assert_eq!(code, 200, "{body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        if json["peers"].as_array().unwrap().len() >= n || Instant::now() > deadline {
            return json;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_jobs_and_peers_and_escapes_what_modules_say() {
    let grid = grid_with_ui().await;
    let submitter = run_jobs(&grid).await;
    let node = &grid.nodes[0];
    let ui = node.ui_addr.expect("the status page is served");
    assert!(ui.ip().is_loopback() && ui.port() != 0);
    let hashchain = hex::encode(sha256(peergrid_jobs::HASHCHAIN.wasm));
    let hostile = hex::encode(sha256(&hostile_module()));

    // The page.
    let (code, head, page) = get(ui, "/").await;
    assert_eq!(code, 200, "{page}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains(
            "content-security-policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        ),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(page.contains(&node.peer_id().to_string()), "no peer id");
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    assert!(
        page.contains(&format!("title=\"{hashchain}\"")),
        "no hash chain row"
    );
    assert!(
        page.contains(&format!("title=\"{hostile}\"")),
        "no hostile row"
    );
    assert!(page.contains("class=\"job success\""), "no successful job");
    assert!(page.contains("class=\"job failed\""), "no failed job");
    assert!(page.contains("&lt;script&gt;alert(&#39;peergrid&#39;)&lt;/script&gt;"));
    assert!(
        !page.contains(HOSTILE),
        "the module's text reached the page raw"
    );
    assert!(
        !page.to_ascii_lowercase().contains("<script"),
        "a script element"
    );
    assert!(page.contains("id=\"work-chart\"") && page.contains("<rect class=\"bar\""));
    assert!(page.contains("kept by submitters"), "the reputation note");

    // The same snapshot as JSON.
    let json = status_json_with_peers(ui, 2).await;
    assert_eq!(json["status"]["peer_id"], node.peer_id().to_string());
    let jobs = json["recent_jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{json:#}");
    assert_eq!(jobs[0]["module"], hostile, "newest first");
    assert_eq!(jobs[0]["end"], "failed");
    let outcome = jobs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.starts_with("invalid module") && outcome.contains(HOSTILE),
        "{outcome}"
    );
    assert_eq!(jobs[1]["module"], hashchain);
    assert_eq!(jobs[1]["end"], "success");
    assert_eq!(jobs[1]["outcome"], "success");
    assert_eq!(jobs[1]["submitter"], submitter.to_string());
    // The default wall-time budget counts no fuel: the work is CPU time.
    assert!(
        jobs[1]["cpu_time_us"].as_u64().unwrap() > 0,
        "{:#}",
        jobs[1]
    );
    assert_eq!(jobs[1]["fuel"], 0, "{:#}", jobs[1]);
    let work = json["work_per_minute"].as_array().unwrap();
    assert_eq!(work.len(), 60);
    let sum = |key: &str| -> u64 { work.iter().map(|w| w[key].as_u64().unwrap()).sum() };
    let counted = &json["status"]["jobs"];
    assert_eq!(sum("cpu_time_us"), counted["cpu_time_us"].as_u64().unwrap());
    assert_eq!(sum("fuel"), counted["fuel_used"].as_u64().unwrap());
    assert!(page.contains("CPU-s"), "the chart is in CPU-seconds");
    let peers: Vec<&str> = json["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer_id"].as_str().unwrap())
        .collect();
    for other in &grid.nodes[1..] {
        assert!(
            peers.contains(&other.peer_id().to_string().as_str()),
            "{peers:?}"
        );
    }
    assert_eq!(json["reputation"]["ledger_exists"], false);
    assert_eq!(json["health"]["ok"], true, "{:#}", json["health"]);

    // Nothing else is served.
    let (code, head, _) = get(ui, "/status").await;
    assert_eq!(code, 404);
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert_eq!(get(ui, "/../etc/passwd").await.0, 404);
    let (code, head, _) = http(ui, "POST", "/", &ui.to_string()).await;
    assert_eq!(code, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    let (code, _, body) = http(ui, "HEAD", "/", &ui.to_string()).await;
    assert_eq!((code, body.as_str()), (200, ""));
    // A name that is not this machine's (DNS rebinding) is refused.
    let (code, _, body) = http(ui, "GET", "/status.json", "evil.example:7080").await;
    assert_eq!(code, 421, "{body}");
    assert_eq!(http(ui, "GET", "/", "localhost").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_page_on_a_public_address_is_refused_unless_allowed() {
    let mut config = NodeConfig::local();
    config.ui = Some(UiConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        public: false,
    });
    let error = GridNode::start(config.clone()).await.unwrap_err();
    assert!(matches!(error, NodeError::Ui(_)), "{error:?}");
    assert!(error.to_string().contains("--ui-public"), "{error}");
    // Allowed: served on every address, loopback included.
    config.ui = Some(UiConfig {
        addr: "0.0.0.0:0".parse().unwrap(),
        public: true,
    });
    let node = GridNode::start(config).await.unwrap();
    let port = node.ui_addr.unwrap().port();
    let loopback: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(get(loopback, "/status.json").await.0, 200);
}

/// `peergrid ARGS` with its own HOME, XDG dirs and data dir.
fn peergrid(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(PEERGRID);
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("PEERGRID_DATA_DIR");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_page_with_ui_and_refuses_a_public_address() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let base = ["node", "--listen", "127.0.0.1:0", "--puzzle-bits", "8"];

    let refused = peergrid(home, &[&base[..], &["--ui", "0.0.0.0:7080"]].concat())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--ui-public") && stderr.contains("0.0.0.0:7080"),
        "{stderr}"
    );

    let shown = peergrid(home, &["config", "show", "--ui", "127.0.0.1:7080"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("ui = \"127.0.0.1:7080\""), "{shown}");
    assert!(shown.contains("ui_public = false"), "{shown}");

    let mut child = peergrid(home, &[&base[..], &["--ui", "127.0.0.1:0"]].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (mut peer, mut page) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("peer id ") {
            peer = Some(id.to_string());
        }
        if let Some(url) = line.strip_prefix("status page on http://") {
            page = Some(url.trim_end_matches('/').parse::<SocketAddr>().unwrap());
        }
        if line.starts_with("listening on ") {
            break;
        }
    }
    let got = match page {
        Some(addr) => Some(get(addr, "/status.json").await),
        None => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    let (code, _, body) = got.expect("the node said where its status page is");
    assert_eq!(code, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"]["peer_id"].as_str(), peer.as_deref());
}

/// Debian's chromium, installed with the project's script if missing
/// (`PEERGRID_CHROMIUM` names another build). Fails, naming the script,
/// if it cannot be had: this test never passes without a browser.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("PEERGRID_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from("/usr/bin/chromium");
    if path.exists() {
        return path;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-chromium.sh");
    let started = Instant::now();
    let installed = Command::new("bash").arg(&script).output();
    eprintln!(
        "ran {} in {:.1} s",
        script.display(),
        started.elapsed().as_secs_f64()
    );
    match installed {
        Ok(out) if out.status.success() && path.exists() => path,
        Ok(out) => panic!(
            "the browser test needs Debian's chromium at {}, and scripts/install-chromium.sh \
             could not install it ({}):\n{}{}\nRun scripts/install-chromium.sh as root (or set \
             PEERGRID_CHROMIUM to a chromium binary).",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "the browser test needs Debian's chromium at {}, and scripts/install-chromium.sh \
             could not be run: {e}. Run it as root (or set PEERGRID_CHROMIUM).",
            path.display()
        ),
    }
}

/// Runs headless chromium on `url` with `mode` (`--screenshot=…` or
/// `--dump-dom`), killed after 60 s. Returns its stdout.
fn headless(chromium: &Path, mode: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(mode)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", chromium.display()));
    // Read both pipes while waiting, so a chatty browser never blocks.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium {mode} did not finish within 60 s:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(status.success(), "chromium {mode}: {status}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_renders_in_headless_chromium() {
    let started = Instant::now();
    let chromium = tokio::task::spawn_blocking(chromium).await.unwrap();
    let grid = grid_with_ui().await;
    run_jobs(&grid).await;
    status_json_with_peers(grid.nodes[0].ui_addr.unwrap(), 2).await;
    let url = format!("http://{}/", grid.nodes[0].ui_addr.unwrap());
    let peer_id = grid.nodes[0].peer_id().to_string();
    // target/test-artifacts, beside cargo's target/tmp.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&png);

    let browser_started = Instant::now();
    let (dom, png) = tokio::task::spawn_blocking(move || {
        headless(&chromium, &format!("--screenshot={}", png.display()), &url);
        (headless(&chromium, "--dump-dom", &url), png)
    })
    .await
    .unwrap();
    eprintln!(
        "chromium: {:.1} s for the screenshot and the DOM; {:.1} s in all; screenshot at {}",
        browser_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64(),
        png.display()
    );

    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        bytes.len()
    );
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 1400));

    // What the browser built from the page: every part, the job rows, the
    // hostile text as text, and no script element.
    for part in [
        "id=\"health\"",
        "id=\"slots\"",
        "id=\"work-chart\"",
        "<rect class=\"bar\"",
        "id=\"job-table\"",
        "class=\"job success\"",
        "class=\"job failed\"",
        "id=\"peer-table\"",
        "id=\"reputation\"",
        peer_id.as_str(),
        "&lt;script&gt;alert('peergrid')&lt;/script&gt;",
    ] {
        assert!(dom.contains(part), "{part} missing from the DOM:\n{dom}");
    }
    assert!(!dom.contains(HOSTILE), "the hostile text became markup");
    assert!(
        !dom.to_ascii_lowercase().contains("<script"),
        "a script element"
    );
}
