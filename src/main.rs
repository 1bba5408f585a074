//! The `xlb` command line: a thin shell over the library.
//!
//! `xlb run --config FILE` loads and validates the configuration and starts the director;
//! `xlb check-config FILE` validates a file like `nginx -t`; `xlb --version`. Global
//! `--log-level` and `--log-format text|json` set up tracing (logs go to stderr).
//!
//! Exit codes (sysexits.h): 0 success; 64 (EX_USAGE) invalid configuration, every error
//! listed on stderr; 66 (EX_NOINPUT) configuration file missing or unreadable; 1 any other
//! failure at run time; 2 bad command line (clap).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;
use xlb::config::{Config, ConfigError, SystemEnvironment};

/// EX_USAGE: the configuration is invalid.
const EXIT_INVALID_CONFIG: u8 = 64;
/// EX_NOINPUT: the configuration file cannot be read.
const EXIT_NO_INPUT: u8 = 66;

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
        Command::Run { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match run(config) {
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
fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        interface = %config.interface,
        services = config.virtual_servers.len(),
        "configuration loaded"
    );
    xlb::daemon::run(config).context("xlb stopped")
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
