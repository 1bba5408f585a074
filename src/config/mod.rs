//! The configuration contract of xlb: the YAML file operators write, and the typed
//! [`Config`] the rest of the crate codes against.
//!
//! Loading has two stages. Serde reads the text into raw structs (`raw`) that deny unknown
//! keys; a syntax error, an unknown key or a value of the wrong type stops there with its
//! line, column and YAML path ([`ConfigError::Syntax`]). Then `validate` turns the raw
//! structs into a [`Config`], filling in defaults and checking every rule; it collects
//! *all* problems, each naming its YAML path and the reason
//! (`virtual_servers[0].real_servers[1].weight: must be between 0 and 65535`), and returns
//! them together ([`ConfigError::Invalid`]).
//!
//! Guarantees: a [`Config`] returned by [`Config::load`] or [`Config::from_yaml`] satisfies
//! every rule listed in `config.example.yaml` (prime Maglev table sizes, no overlapping
//! VIP:port:protocol, address families that match, existing cores, and so on), so later
//! stages do not re-check them. Loading never panics on any input text. Facts about the
//! machine (CPU count, interface addresses) come through the [`Environment`] trait, so
//! validation itself is pure and tested with [`StaticEnvironment`].

mod duration;
mod env;
mod raw;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::lb::tables::OnDown;
pub use duration::{format_duration, parse_duration};
pub use env::{Environment, StaticEnvironment, SystemEnvironment};
pub use validate::is_prime;

/// Largest Maglev table size accepted (the largest prime below 2^24).
pub const MAX_TABLE_SIZE: usize = 16_777_213;
/// Default Maglev table size (prime; good up to 655 real servers).
pub const DEFAULT_TABLE_SIZE: usize = 65_537;
/// Largest `workers.batch_size`.
pub const MAX_BATCH_SIZE: usize = 1024;
/// Largest `workers.frames` (UMEM frames per worker).
pub const MAX_FRAMES: u32 = 1 << 20;
/// Largest queue id accepted in `workers.queues`.
pub const MAX_QUEUE_ID: u32 = 4095;
/// Largest `flows.capacity` (entries per worker).
pub const MAX_FLOW_CAPACITY: usize = 1 << 28;

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Director interface facing clients and real servers (the XDP program attaches here).
    pub interface: String,
    /// How the XDP program is attached.
    pub xdp_mode: XdpMode,
    /// AF_XDP workers.
    pub workers: Workers,
    /// Per-worker flow tables.
    pub flows: Flows,
    /// Prometheus endpoint.
    pub metrics: Metrics,
    /// Unix socket of `xlb status` / `xlb reload`.
    pub control_socket: PathBuf,
    /// VRRP instances; empty means this director is always active.
    pub vrrp: Vec<VrrpInstance>,
    /// Virtual services.
    pub virtual_servers: Vec<VirtualServer>,
}

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Driver (native) XDP.
    #[default]
    Native,
    /// Generic (skb) XDP.
    Generic,
}

/// Worker layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workers {
    /// NIC rx queues served, one worker each.
    pub queues: Queues,
    /// CPU cores the workers are pinned to (ids checked to exist; no duplicates).
    pub cores: Vec<usize>,
    /// Frames handled per ring batch, 1..=1024.
    pub batch_size: usize,
    /// UMEM frames per worker: a power of two, >= 2 x batch_size, <= 2^20.
    pub frames: u32,
    /// Scheduling of pinned workers (`workers.sched`).
    pub sched: WorkerSched,
}

/// Scheduling policy of a pinned worker thread (`workers.sched`): `inherit`, `nice:N`
/// (-20..=19) or `fifo:N` (1..=99, needs CAP_SYS_NICE). The worker's own type, so the
/// config and the thread that applies it parse and mean the same thing.
pub use crate::dataplane::worker::WorkerPriority as WorkerSched;

/// Which rx queues get a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queues {
    /// Every combined/rx queue of the interface.
    All,
    /// These queue ids (non-empty, no duplicates, each <= [`MAX_QUEUE_ID`]).
    List(Vec<u32>),
}

/// Flow table settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flows {
    /// Entries per worker.
    pub capacity: usize,
    /// Idle timeout of a TCP flow.
    pub tcp_timeout: Duration,
    /// Remaining life of a TCP flow after FIN or RST.
    pub tcp_fin_timeout: Duration,
    /// Idle timeout of a UDP flow.
    pub udp_timeout: Duration,
}

/// Metrics endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
}

/// One VRRP instance (a virtual router on one interface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpInstance {
    /// Unique name, referenced by `virtual_servers[].vrrp`.
    pub name: String,
    /// Interface the adverts go out of (defaults to the top-level `interface`).
    pub interface: String,
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// 1..=254; 255 only when every owned VIP is an address of `interface`.
    pub priority: u8,
    /// 2 (IPv4 only) or 3.
    pub version: u8,
    /// v2: whole seconds 1..=255; v3: a multiple of 10 ms in 10ms..=40.95s.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// Delay before preempting.
    pub preempt_delay: Duration,
    /// Unicast peers (same family as the instance); empty means multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// Source address of unicast adverts (same family as the instance).
    pub unicast_src_ip: Option<IpAddr>,
    /// VRRPv2 simple password (1..=8 bytes), only with version 2.
    pub auth_pass: Option<String>,
    /// v3 over IPv4: send the checksum without the pseudo-header (keepalived's option).
    pub v3_checksum_as_v2: bool,
    /// Gratuitous ARPs / unsolicited NAs sent at the transition to master.
    pub garp_master_repeat: u32,
    /// After this delay the same count is sent again; zero means never.
    pub garp_master_refresh_delay: Duration,
    /// Interfaces whose link-down means FAULT (defaults to `[interface]`).
    pub track_interfaces: Vec<String>,
    /// Commands run on transitions.
    pub notify: Notify,
}

/// Commands run (by `sh -c`) on VRRP transitions, keepalived style.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Notify {
    /// On becoming master.
    pub master: Option<String>,
    /// On becoming backup.
    pub backup: Option<String>,
    /// On entering fault.
    pub fault: Option<String>,
}

/// L4 protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// IP protocol number (6 or 17).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => crate::lb::tables::PROTO_TCP,
            Protocol::Udp => crate::lb::tables::PROTO_UDP,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One virtual service: VIP, protocol, ports and its real servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    /// Unique name.
    pub name: String,
    /// Virtual IP (unicast).
    pub vip: IpAddr,
    /// Ports (no duplicates); empty means every port.
    pub ports: Vec<u16>,
    /// Protocol.
    pub protocol: Protocol,
    /// Maglev table size: prime, >= 100 x real servers, <= [`MAX_TABLE_SIZE`].
    pub table_size: usize,
    /// The VRRP instance owning this VIP, if any (exists in `Config::vrrp`).
    pub vrrp: Option<String>,
    /// Where new flows go when every real server is down (same family as `vip`).
    pub sorry_server: Option<IpAddr>,
    /// What happens to flows of a real server that went down.
    pub on_down: OnDown,
    /// A failed real server gets weight 0 (drain) instead of leaving the table.
    pub inhibit_on_failure: bool,
    /// Real servers (distinct addresses of the VIP's family).
    pub real_servers: Vec<RealServer>,
}

/// One real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServer {
    /// Its address (same family as the VIP).
    pub address: IpAddr,
    /// Its MAC; `None` means resolve through the kernel's neighbour table.
    pub mac: Option<[u8; 6]>,
    /// Maglev weight 0..=65535; 0 = drain.
    pub weight: u32,
    /// Command run when it goes up.
    pub notify_up: Option<String>,
    /// Command run when it goes down.
    pub notify_down: Option<String>,
    /// Health check; `None` means always up.
    pub check: Option<Check>,
}

/// A health check of one real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is probed.
    pub kind: CheckKind,
    /// Port probed (defaults to the service's first port). 0 only for an `exec` check of
    /// an every-port service that names no port (the command does not use it).
    pub port: u16,
    /// Time between probes (> 0).
    pub interval: Duration,
    /// Time a probe may take (> 0, <= interval).
    pub timeout: Duration,
    /// Consecutive successes that bring a server up (>= 1).
    pub rise: u32,
    /// Consecutive failures that take it down (>= 1).
    pub fall: u32,
    /// Delay before the first probe.
    pub warmup: Duration,
}

/// The probe of a [`Check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP connect.
    Tcp,
    /// HTTP GET.
    Http {
        /// Request path, starting with `/`.
        path: String,
        /// Host header (default: the real server's address).
        host: Option<String>,
        /// Status codes meaning up (each 100..=599, non-empty).
        status: Vec<u16>,
        /// The body must contain this.
        body_contains: Option<String>,
        /// The body's MD5, 32 lowercase hex digits.
        digest: Option<String>,
    },
    /// A command run by `sh -c`; exit status 0 means up.
    Exec {
        /// The command.
        command: String,
    },
}

/// One validation problem: where (a YAML path such as `vrrp[0].priority`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// YAML path of the offending value.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key, or a value of the wrong type.
    /// `line` and `column` are 1-based (0 when the parser gave no position).
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, starting with the YAML path when there is one.
        message: String,
    },
    /// The YAML is well-formed but breaks rules; every problem found, in file order.
    #[error("{}", DisplayList(.0))]
    Invalid(Vec<ValidationError>),
}

struct DisplayList<'a>(&'a [ValidationError]);

impl fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text, env)
    }

    /// Parse and validate YAML text.
    pub fn from_yaml(text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
        let raw = parse_raw(text)?;
        validate::validate(raw, env).map_err(ConfigError::Invalid)
    }

    /// Number of real servers over all virtual services.
    pub fn real_server_count(&self) -> usize {
        self.virtual_servers
            .iter()
            .map(|vs| vs.real_servers.len())
            .sum()
    }

    /// The keys whose change from `self` (running) to `new` cannot be applied by a hot
    /// reload, because they shape the data plane or the process's sockets: a reload must
    /// refuse them and name them. Empty means the new config can be applied live
    /// (services, real servers, weights, checks, VRRP instances, flow timeouts).
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut differ = |changed: bool, key: &'static str| {
            if changed {
                keys.push(key);
            }
        };
        differ(self.interface != new.interface, "interface");
        differ(self.xdp_mode != new.xdp_mode, "xdp_mode");
        differ(self.workers.queues != new.workers.queues, "workers.queues");
        differ(self.workers.cores != new.workers.cores, "workers.cores");
        differ(
            self.workers.batch_size != new.workers.batch_size,
            "workers.batch_size",
        );
        differ(self.workers.frames != new.workers.frames, "workers.frames");
        differ(self.workers.sched != new.workers.sched, "workers.sched");
        differ(self.flows.capacity != new.flows.capacity, "flows.capacity");
        differ(self.metrics.listen != new.metrics.listen, "metrics.listen");
        differ(self.control_socket != new.control_socket, "control_socket");
        keys
    }

    /// The VIPs owned by the VRRP instance `name` (distinct, in config order).
    pub fn vips_of(&self, name: &str) -> Vec<IpAddr> {
        let mut vips = Vec::new();
        for vs in &self.virtual_servers {
            if vs.vrrp.as_deref() == Some(name) && !vips.contains(&vs.vip) {
                vips.push(vs.vip);
            }
        }
        vips
    }
}

/// Stage one: YAML text to raw structs, with line, column and path on failure.
fn parse_raw(text: &str) -> Result<raw::RawConfig, ConfigError> {
    // An empty document (or one holding only comments) is an empty mapping: validation
    // then says which keys are required instead of a bare "EOF" message.
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if blank {
        return Ok(raw::RawConfig::default());
    }
    if let Some((line, column)) = too_deep(text) {
        return Err(ConfigError::Syntax {
            line,
            column,
            message: format!("brackets nested deeper than {MAX_BRACKET_DEPTH} levels"),
        });
    }
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let mut message = strip_location(&inner.to_string());
        if path != "." && !path.is_empty() {
            // serde_yaml starts its message with the path of the enclosing value (for an
            // unknown key, the mapping holding it); serde_path_to_error's path is the
            // more precise one, so keep only that.
            if let Some((head, rest)) = message.split_once(": ") {
                if !head.contains(' ') && path.starts_with(head) {
                    message = rest.to_owned();
                }
            }
            message = format!("{path}: {message}");
        }
        ConfigError::Syntax {
            line,
            column,
            message,
        }
    })
}

/// Bound on `[`/`{` nesting checked before parsing. libyaml's scanner is quadratic in
/// flow nesting depth (100,000 `[` take minutes) and serde_yaml refuses depth > 128 anyway,
/// so deeper text is refused up front. The count ignores quoting and comments: only a file
/// with more than this many unclosed brackets inside strings is refused wrongly.
const MAX_BRACKET_DEPTH: usize = 1024;

/// Position (1-based line, column) where bracket nesting first exceeds the bound.
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    for c in text.chars() {
        column += 1;
        match c {
            '[' | '{' => {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    return Some((line, column));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            '\n' => {
                line += 1;
                column = 0;
            }
            _ => {}
        }
    }
    None
}

/// serde_yaml appends " at line L column C" to its messages; the location is kept in
/// separate fields, so drop the duplicate.
fn strip_location(message: &str) -> String {
    if let Some(i) = message.rfind(" at line ") {
        let tail = &message[i + " at line ".len()..];
        let mut parts = tail.split(" column ");
        let is_loc = matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(l), Some(c), None)
                if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit())
                    && !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit())
        );
        if is_loc {
            return message[..i].to_owned();
        }
    }
    message.to_owned()
}
