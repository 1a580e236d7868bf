//! The volunteer's config file, as a user meets it: the real `peergrid`
//! binary reading a `node.toml`, `peergrid config show` printing what a node
//! would run with, flags overriding the file, and the errors for an unknown
//! key or a missing file. Every run gets its own HOME and XDG_CONFIG_HOME, so
//! the user's own config never leaks in.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PEERGRID: &str = env!("CARGO_BIN_EXE_peergrid");

/// A throwaway home with a config dir, and a file in it.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(PEERGRID);
        command
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env_remove("PEERGRID_DATA_DIR");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn show(home: &Home, args: &[&str]) -> String {
    let output = home.run(&[&["config", "show"], args].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

const DENIED: &str = "abababababababababababababababababababababababababababababababab";

fn volunteer_file(home: &Home) -> PathBuf {
    home.write(
        "node.toml",
        &format!("slots = 3\ndeny_submitters = [\"{DENIED}\"]\nmax_fuel = 5000000\n"),
    )
}

#[test]
fn config_show_prints_what_the_file_sets() {
    let home = Home::new();
    let file = volunteer_file(&home);
    let shown = show(&home, &["--config", file.to_str().unwrap()]);
    assert!(shown.contains("slots = 3\n"), "{shown}");
    assert!(
        shown.contains(&format!("deny_submitters = [\"{DENIED}\"]")),
        "{shown}"
    );
    assert!(shown.contains("max_fuel = 5000000\n"), "{shown}");
    // Defaults are filled in, and the file read is named.
    assert!(shown.contains("listen = \"127.0.0.1:7400\""), "{shown}");
    assert!(shown.contains(&file.display().to_string()), "{shown}");
}

#[test]
fn a_flag_overrides_the_file() {
    let home = Home::new();
    let file = volunteer_file(&home);
    let shown = show(&home, &["--config", file.to_str().unwrap(), "--slots", "5"]);
    assert!(shown.contains("slots = 5\n"), "{shown}");
    assert!(
        shown.contains(DENIED),
        "the file's other keys stay: {shown}"
    );
}

#[test]
fn the_default_file_in_the_config_dir_is_read_if_present() {
    let home = Home::new();
    let shown = show(&home, &[]);
    assert!(shown.contains("no config file"), "{shown}");
    home.write("config/peergrid/node.toml", "slots = 7\n");
    let shown = show(&home, &[]);
    assert!(shown.contains("slots = 7\n"), "{shown}");
}

#[test]
fn config_show_as_json_parses() {
    let home = Home::new();
    let file = volunteer_file(&home);
    let output = home.run(&[
        "config",
        "show",
        "--output",
        "json",
        "--config",
        file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["slots"], 3);
    assert_eq!(json["deny_submitters"][0], DENIED);
}

#[test]
fn an_unknown_key_is_an_error_naming_it_and_its_line() {
    let home = Home::new();
    let file = home.write("node.toml", "slots = 2\nslotz = 3\n");
    for command in [&["config", "show"][..], &["node"][..]] {
        let output = home.run(&[command, &["--config", file.to_str().unwrap()]].concat());
        let code = output.status.code();
        assert!(matches!(code, Some(1 | 2)), "{command:?}: {code:?}");
        let message = stderr(&output);
        assert!(message.contains("slotz"), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains(&file.display().to_string()), "{message}");
    }
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let home = Home::new();
    let missing = home.dir.path().join("nowhere/node.toml");
    for command in [&["config", "show"][..], &["node"][..]] {
        let output = home.run(&[command, &["--config", missing.to_str().unwrap()]].concat());
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        let message = stderr(&output);
        assert!(
            message.contains(&missing.display().to_string()),
            "{message}"
        );
    }
}

/// `peergrid node` itself runs with the file's settings (and a flag over
/// them): the slots it reports and the data dir it uses.
#[test]
fn a_node_runs_with_the_file_and_the_flags() {
    let home = Home::new();
    let data = home.dir.path().join("node-data");
    let file = home.write(
        "node.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\npuzzle_bits = 8\nslots = 3\ndata_dir = {:?}\n",
            data.to_str().unwrap()
        ),
    );
    let mut child = home
        .command(&["node", "--config", file.to_str().unwrap(), "--slots", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut listening = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("listening on ") {
            listening = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = listening.expect("the node started");
    assert!(line.contains("with 2 job slot(s)"), "{line}");
    assert!(line.contains(&data.display().to_string()), "{line}");
    assert!(Path::new(&data).is_dir());
}
