//! The `xlb` command line: a thin shell over the library.
//!
//! `xlb run --config FILE` loads and validates the configuration and starts the director;
//! `xlb check-config FILE` validates a file like `nginx -t`; `xlb status [--json]` shows
//! services, real servers and VRRP state of the running daemon (like `ipvsadm -L -n
//! --stats`); `xlb reload` makes it re-read its configuration file (as SIGHUP does) and
//! prints what changed or every error; `xlb --version`. `status` and `reload` talk to the
//! daemon's control socket: `--socket PATH`, else `control_socket` read from `--config
//! FILE`, else `$XLB_SOCKET`, else /run/xlb.sock (or /run/xlb/xlb.sock, the systemd
//! unit's, when only that exists). Global `--log-level` and `--log-format
//! text|json` set up tracing (logs go to stderr).
//!
//! Exit codes (sysexits.h): 0 success; 64 (EX_USAGE) invalid configuration, every error
//! listed on stderr (also for `xlb reload`, when the daemon found the new file invalid);
//! 66 (EX_NOINPUT) configuration file missing or unreadable; 69 (EX_UNAVAILABLE) no daemon
//! answers on the control socket; 78 (EX_CONFIG) `xlb reload` refused because changed keys
//! need a restart; 1 any other failure at run time; 2 bad command line (clap).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;
use xlb::config::{Config, ConfigError, SystemEnvironment};
use xlb::control::status::{self, Request, Response};

/// EX_USAGE: the configuration is invalid.
const EXIT_INVALID_CONFIG: u8 = 64;
/// EX_NOINPUT: the configuration file cannot be read.
const EXIT_NO_INPUT: u8 = 66;
/// EX_UNAVAILABLE: no daemon answers on the control socket.
const EXIT_UNAVAILABLE: u8 = 69;
/// EX_CONFIG: the reload needs a restart.
const EXIT_RESTART_NEEDED: u8 = 78;
/// Default control socket (the config's default `control_socket`).
const DEFAULT_SOCKET: &str = "/run/xlb.sock";
/// The socket of the systemd unit (scripts/xlb.service: RuntimeDirectory=xlb).
const UNIT_SOCKET: &str = "/run/xlb/xlb.sock";
/// How long `status` / `reload` wait for the daemon.
const CONTROL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    name = "xlb",
    version,
    about = "Userspace L4 load balancer (LVS-DR director) on AF_XDP"
)]
struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or an env-filter directive
    /// such as "xlb=debug". Default: $RUST_LOG, else info.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load the configuration and run the director.
    Run {
        /// Configuration file (YAML).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit: 0 if valid, 64 listing every error.
    CheckConfig {
        /// Configuration file (YAML).
        file: PathBuf,
    },
    /// Show virtual services, real servers, VRRP state and counters of the running daemon.
    Status {
        /// Print JSON (for scripts) instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Make the running daemon re-read its configuration file (like SIGHUP): 0 applied,
    /// 64 invalid (every error listed), 78 refused (keys that need a restart).
    Reload {
        /// Print the daemon's answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Where the daemon's control socket is.
#[derive(clap::Args, Debug)]
struct Target {
    /// Control socket path.
    #[arg(long, short, value_name = "PATH", conflicts_with = "config")]
    socket: Option<PathBuf>,
    /// Read `control_socket` from this configuration file (not validated).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_level.as_deref(), cli.log_format) {
        eprintln!("xlb: {e:#}");
        return ExitCode::from(EXIT_INVALID_CONFIG);
    }
    match cli.command {
        Command::CheckConfig { file } => match load(&file) {
            Ok(config) => {
                println!(
                    "configuration OK: {} virtual services, {} real servers, {} VRRP instances",
                    config.virtual_servers.len(),
                    config.real_server_count(),
                    config.vrrp.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Status { json, target } => control(&target, Request::Status, json),
        Command::Reload { json, target } => control(&target, Request::Reload, json),
        Command::Run { config: path } => {
            let config = match load(&path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match run(config, path) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Run the director with a validated configuration until it is told to stop.
fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    tracing::info!(
        interface = %config.interface,
        services = config.virtual_servers.len(),
        "configuration loaded"
    );
    // An absolute path, so a reload reads the same file whatever the working directory.
    let path = std::path::absolute(&path).unwrap_or(path);
    let opts = xlb::daemon::RunOptions {
        config_path: Some(path),
    };
    xlb::daemon::run_with(config, opts).context("xlb stopped")
}

/// The control socket `target` names.
fn socket_path(target: &Target) -> Result<PathBuf, ExitCode> {
    if let Some(s) = &target.socket {
        return Ok(s.clone());
    }
    if let Some(file) = &target.config {
        // Only the one key: the file may be invalid (that is what `reload` reports).
        let text = std::fs::read_to_string(file).map_err(|e| {
            eprintln!("xlb: cannot read {}: {e}", file.display());
            ExitCode::from(EXIT_NO_INPUT)
        })?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or_default();
        return Ok(doc
            .get("control_socket")
            .and_then(|v| v.as_str())
            .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from));
    }
    if let Some(s) = std::env::var_os("XLB_SOCKET") {
        return Ok(PathBuf::from(s));
    }
    // The systemd unit's RuntimeDirectory, when the default is not there.
    let unit = Path::new(UNIT_SOCKET);
    if !Path::new(DEFAULT_SOCKET).exists() && unit.exists() {
        return Ok(unit.to_owned());
    }
    Ok(PathBuf::from(DEFAULT_SOCKET))
}

/// `xlb status` and `xlb reload`.
fn control(target: &Target, req: Request, json: bool) -> ExitCode {
    let path = match socket_path(target) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let resp = match status::request(&path, req, CONTROL_TIMEOUT) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xlb: {e} (is xlb running? is this its control_socket?)");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    if json {
        match &resp {
            Response::Status(r) => print_json(r),
            Response::Reload(r) => print_json(r),
            Response::Error(e) => print_json(&serde_json::json!({ "error": e })),
        }
    }
    match resp {
        Response::Status(r) => {
            if !json {
                print!("{}", status::render_table(&r));
            }
            ExitCode::SUCCESS
        }
        Response::Reload(r) => {
            let code = match r.result.as_str() {
                "applied" => {
                    if !json {
                        println!(
                            "reload applied: {} change{}",
                            r.changes.len(),
                            if r.changes.len() == 1 { "" } else { "s" }
                        );
                        for c in &r.changes {
                            println!("  {c}");
                        }
                    }
                    return ExitCode::SUCCESS;
                }
                "invalid" => {
                    eprintln!(
                        "xlb: reload failed, the running configuration stays; {} error{}:",
                        r.errors.len(),
                        if r.errors.len() == 1 { "" } else { "s" }
                    );
                    for e in &r.errors {
                        eprintln!("{e}");
                    }
                    EXIT_INVALID_CONFIG
                }
                _ => {
                    eprintln!(
                        "xlb: reload refused, the running configuration stays: these keys need a restart of xlb: {}",
                        r.restart_needed.join(", ")
                    );
                    EXIT_RESTART_NEEDED
                }
            };
            ExitCode::from(code)
        }
        Response::Error(e) => {
            eprintln!("xlb: the daemon answered: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("xlb: {e}"),
    }
}

/// Load and validate `path`, printing every problem to stderr. On failure returns the exit
/// code to use.
fn load(path: &Path) -> Result<Config, ExitCode> {
    match Config::load(path, &SystemEnvironment) {
        Ok(c) => Ok(c),
        Err(e) => {
            let shown = path.display();
            match &e {
                ConfigError::Io { .. } => {
                    eprintln!("xlb: {e}");
                    return Err(ExitCode::from(EXIT_NO_INPUT));
                }
                ConfigError::Syntax {
                    line,
                    column,
                    message,
                } => eprintln!("xlb: {shown}:{line}:{column}: {message}"),
                ConfigError::Invalid(errors) => {
                    eprintln!(
                        "xlb: {shown}: {} error{}:",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" }
                    );
                    for err in errors {
                        eprintln!("{err}");
                    }
                }
            }
            eprintln!("xlb: configuration file {shown} test failed");
            Err(ExitCode::from(EXIT_INVALID_CONFIG))
        }
    }
}

fn init_logging(level: Option<&str>, format: LogFormat) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).with_context(|| format!("invalid --log-level {l:?}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
