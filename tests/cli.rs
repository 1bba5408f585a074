//! The `xlb` binary: `check-config` exit codes and output, `run` refusing an invalid
//! config, `--version`.

use std::process::{Command, Output};

const XLB: &str = env!("CARGO_BIN_EXE_xlb");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn xlb(args: &[&str]) -> Output {
    Command::new(XLB)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run xlb")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of the example with `cores` that exist on any machine (the example pins core 1,
/// which a one-CPU CI box lacks).
fn example_for_this_machine(dir: &str) -> String {
    let example = std::fs::read_to_string(format!("{ROOT}/config.example.yaml")).unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let patched = if cpus >= 2 {
        example
    } else {
        example.replace("cores: [1]", "cores: [0]")
    };
    let path = format!("{dir}/example.yaml");
    std::fs::write(&path, patched).unwrap();
    path
}

fn tempdir(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("xlb-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

#[test]
fn check_config_accepts_the_example() {
    let dir = tempdir("ok");
    let file = example_for_this_machine(&dir);
    let out = xlb(&["check-config", &file]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "configuration OK: 1 virtual services, 2 real servers, 1 VRRP instances"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_config_lists_every_error_and_exits_64() {
    let out = xlb(&[
        "check-config",
        &format!("{ROOT}/tests/fixtures/config/broken.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    for line in [
        "virtual_servers[0].real_servers[0].weight: must be between 0 and 65535",
        "virtual_servers[0].real_servers[1].check.timeout: 2s must not exceed interval (1s)",
        "virtual_servers[0].table_size: 65536 is not prime",
    ] {
        assert!(err.contains(line), "missing {line:?} in:\n{err}");
    }
    assert!(err.contains("3 errors"), "{err}");
    assert!(err.contains("test failed"), "{err}");
}

#[test]
fn check_config_reports_syntax_errors_with_file_line_and_column() {
    let file = format!("{ROOT}/tests/fixtures/config/unknown_key.yaml");
    let out = xlb(&["check-config", &file]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{file}:8:9: virtual_servers[0].real_servers[0].wieght: unknown field `wieght`"
        )),
        "{err}"
    );
}

#[test]
fn unreadable_file_exits_66() {
    let out = xlb(&["check-config", "/nonexistent/xlb.yaml"]);
    assert_eq!(out.status.code(), Some(66));
    assert!(text(&out.stderr).contains("/nonexistent/xlb.yaml"));
    let out = xlb(&["run", "--config", "/nonexistent/xlb.yaml"]);
    assert_eq!(out.status.code(), Some(66));
}

#[test]
fn run_refuses_an_invalid_config_with_64() {
    let out = xlb(&[
        "run",
        "--config",
        &format!("{ROOT}/tests/fixtures/config/broken.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("virtual_servers[0].table_size"));
}

#[test]
fn run_on_a_missing_interface_fails_cleanly() {
    // Never run the daemon on this machine's real interfaces: point the example at an
    // interface that does not exist and expect one clear error and exit status 1.
    let dir = tempdir("run");
    let file = example_for_this_machine(&dir);
    let text_cfg = std::fs::read_to_string(&file)
        .unwrap()
        .replace("interface: eth0", "interface: xlbnosuch0");
    std::fs::write(&file, text_cfg).unwrap();
    let out = xlb(&["--log-format", "json", "run", "--config", &file]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let err = text(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last).expect("json log line");
    assert_eq!(json["level"], "ERROR");
    assert!(
        json["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("xlbnosuch0"),
        "the error names the interface: {last}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn version_and_bad_usage() {
    let out = xlb(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("xlb {}", env!("CARGO_PKG_VERSION"))
    );
    let out = xlb(&["--log-format", "xml", "check-config", "x"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
    let out = xlb(&["--log-level", "xlb=loud", "check-config", "x"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
}
