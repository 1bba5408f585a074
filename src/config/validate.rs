//! Stage two of config loading: raw structs to a typed [`Config`], defaults filled in and
//! every rule checked.
//!
//! Validation never stops at the first problem: each check records a [`ValidationError`]
//! with the YAML path of the value and goes on with a placeholder, so an operator sees the
//! whole list at once. Rules that relate several places (duplicate VIP:port:protocol,
//! VRRP ownership and address families) run after the per-item checks. The only outside
//! facts used come from the [`Environment`]. No input makes it panic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{format_duration, parse_duration};
use super::raw::*;
use super::*;

/// The Maglev module's exact primality test: the table sizes it builds are the ones checked.
pub use crate::lb::maglev::is_prime;

/// Smallest prime >= n, if one exists within the table-size bound.
fn next_prime(n: u64) -> Option<u64> {
    (n..=MAX_TABLE_SIZE as u64).find(|&k| is_prime(k))
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

struct Validator<'e> {
    env: &'e dyn Environment,
    errors: Vec<ValidationError>,
}

impl Validator<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// An integer in `lo..=hi`, or `default` when absent. Out of range: error, `default`.
    fn int(&mut self, path: &str, v: Option<RawInt>, default: i64, lo: i64, hi: i64) -> i64 {
        match v.map(|RawInt(x)| x) {
            None => default,
            Some(x) if (lo..=hi).contains(&x) => x,
            Some(_) => {
                self.err(path, format!("must be between {lo} and {hi}"));
                default
            }
        }
    }

    fn duration(&mut self, path: &str, v: Option<&RawDuration>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(RawDuration(text)) => match parse_duration(text) {
                Ok(d) => d,
                Err(msg) => {
                    self.err(path, msg);
                    default
                }
            },
        }
    }

    /// A duration that must be greater than zero.
    fn positive_duration(
        &mut self,
        path: &str,
        v: Option<&RawDuration>,
        default: Duration,
    ) -> Duration {
        let d = self.duration(path, v, default);
        if d.is_zero() {
            self.err(path, "must be greater than 0s");
            return default;
        }
        d
    }

    fn ip(&mut self, path: &str, text: &str) -> Option<IpAddr> {
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(path, format!("{text:?} is not an IPv4 or IPv6 address"));
                None
            }
        }
    }

    /// A required, non-blank string.
    fn required_name(&mut self, path: &str, v: Option<String>) -> String {
        match v {
            None => {
                self.err(path, "is required");
                String::new()
            }
            Some(s) if s.trim().is_empty() => {
                self.err(path, "must not be empty");
                String::new()
            }
            Some(s) => s,
        }
    }

    /// An optional command or text: absent is fine, blank is not.
    fn optional_text(&mut self, path: &str, v: Option<String>) -> Option<String> {
        match v {
            Some(s) if s.trim().is_empty() => {
                self.err(path, "must not be empty (leave it out or write null)");
                None
            }
            other => other,
        }
    }

    fn ifname(&mut self, path: &str, name: &str) {
        // Linux: at most IFNAMSIZ-1 = 15 bytes, no '/', no whitespace, not "." or "..".
        if name.is_empty() {
            return; // reported by required_name
        }
        if name.len() > 15
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains(':')
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.err(
                path,
                format!("{name:?} is not a valid interface name (at most 15 bytes, no '/', ':' or spaces)"),
            );
        }
    }
}

/// Validate raw config into typed config, or return every problem found.
pub fn validate(raw: RawConfig, env: &dyn Environment) -> Result<Config, Vec<ValidationError>> {
    let mut v = Validator {
        env,
        errors: Vec::new(),
    };

    let interface = v.required_name("interface", raw.interface);
    v.ifname("interface", &interface);
    let xdp_mode = match raw.xdp_mode {
        None | Some(RawXdpMode::Native) => XdpMode::Native,
        Some(RawXdpMode::Generic) => XdpMode::Generic,
    };
    let workers = workers(&mut v, raw.workers.unwrap_or_default());
    let flows = flows(&mut v, raw.flows.unwrap_or_default());

    let listen_text = raw
        .metrics
        .unwrap_or_default()
        .listen
        .unwrap_or_else(|| "127.0.0.1:9650".to_owned());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            v.err(
                "metrics.listen",
                format!("{listen_text:?} is not an address:port such as \"127.0.0.1:9650\" or \"[::1]:9650\""),
            );
            SocketAddr::from((Ipv4Addr::LOCALHOST, 9650))
        }
    };

    let control_socket = raw
        .control_socket
        .unwrap_or_else(|| "/run/xlb.sock".to_owned());
    if control_socket.is_empty() {
        v.err("control_socket", "must not be empty");
    } else if control_socket.len() > 107 {
        v.err(
            "control_socket",
            "must be at most 107 bytes long (the limit of a unix socket path)",
        );
    }

    let instances: Vec<VrrpInstance> = raw
        .vrrp
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| vrrp_instance(&mut v, &format!("vrrp[{i}]"), r, &interface))
        .collect();
    for i in 0..instances.len() {
        let name = &instances[i].name;
        if name.is_empty() {
            continue;
        }
        if let Some(j) = instances[..i].iter().position(|o| &o.name == name) {
            v.err(
                format!("vrrp[{i}].name"),
                format!("duplicate instance name {name:?} (also vrrp[{j}])"),
            );
        }
    }

    let raw_services = match raw.virtual_servers {
        None => {
            v.err(
                "virtual_servers",
                "is required (a list of virtual services; [] for none)",
            );
            Vec::new()
        }
        Some(list) => list,
    };
    let services: Vec<VirtualServer> = raw_services
        .into_iter()
        .enumerate()
        .map(|(i, r)| virtual_server(&mut v, i, r, &instances))
        .collect();

    cross_service_checks(&mut v, &services);
    vrrp_cross_checks(&mut v, &instances, &services);

    if v.errors.is_empty() {
        Ok(Config {
            interface,
            xdp_mode,
            workers,
            flows,
            metrics: Metrics { listen },
            control_socket: PathBuf::from(control_socket),
            vrrp: instances,
            virtual_servers: services,
        })
    } else {
        Err(v.errors)
    }
}

fn workers(v: &mut Validator, raw: RawWorkers) -> Workers {
    let queues = match raw.queues {
        None => Queues::All,
        Some(RawQueues::Word(w)) if w == "all" => Queues::All,
        Some(RawQueues::Word(w)) => {
            v.err(
                "workers.queues",
                format!("must be \"all\" or a list of queue ids, not {w:?}"),
            );
            Queues::All
        }
        Some(RawQueues::List(ids)) => {
            if ids.is_empty() {
                v.err(
                    "workers.queues",
                    "must not be empty (write \"all\" for every queue)",
                );
            }
            let mut out: Vec<u32> = Vec::with_capacity(ids.len());
            for (i, RawInt(id)) in ids.into_iter().enumerate() {
                let path = format!("workers.queues[{i}]");
                if !(0..=i64::from(MAX_QUEUE_ID)).contains(&id) {
                    v.err(path, format!("must be between 0 and {MAX_QUEUE_ID}"));
                } else if out.contains(&(id as u32)) {
                    v.err(path, format!("queue {id} is listed twice"));
                } else {
                    out.push(id as u32);
                }
            }
            Queues::List(out)
        }
    };

    let cpus = v.env.cpu_count();
    let cores = match raw.cores {
        None if cpus <= 1 => vec![0],
        None => (1..cpus).collect(),
        Some(list) => {
            if list.is_empty() {
                v.err(
                    "workers.cores",
                    "must not be empty (leave it out for every core but 0)",
                );
            }
            let mut out: Vec<usize> = Vec::with_capacity(list.len());
            for (i, RawInt(c)) in list.into_iter().enumerate() {
                let path = format!("workers.cores[{i}]");
                if c < 0 || c as u64 >= cpus as u64 {
                    v.err(
                        path,
                        format!(
                            "core {c} does not exist: this machine has {cpus} CPU{} (0-{})",
                            if cpus == 1 { "" } else { "s" },
                            cpus.saturating_sub(1)
                        ),
                    );
                } else if out.contains(&(c as usize)) {
                    v.err(path, format!("core {c} is listed twice"));
                } else {
                    out.push(c as usize);
                }
            }
            out
        }
    };

    let batch_size = v.int(
        "workers.batch_size",
        raw.batch_size,
        64,
        1,
        MAX_BATCH_SIZE as i64,
    ) as usize;
    let frames = match raw.frames.map(|RawInt(x)| x) {
        None => 4096u32,
        Some(f) => {
            if !(1..=i64::from(MAX_FRAMES)).contains(&f) || !(f as u64).is_power_of_two() {
                v.err(
                    "workers.frames",
                    format!(
                        "must be a power of two between {} and {MAX_FRAMES}",
                        2 * batch_size
                    ),
                );
                4096
            } else if (f as usize) < 2 * batch_size {
                v.err(
                    "workers.frames",
                    format!("must be at least twice batch_size ({})", 2 * batch_size),
                );
                4096
            } else {
                f as u32
            }
        }
    };

    let sched = match raw.sched {
        None => WorkerSched::Fifo(1),
        Some(text) => text.parse().unwrap_or_else(|e: String| {
            v.err("workers.sched", e);
            WorkerSched::Fifo(1)
        }),
    };

    Workers {
        queues,
        cores,
        batch_size,
        frames,
        sched,
    }
}

fn flows(v: &mut Validator, raw: RawFlows) -> Flows {
    Flows {
        capacity: v.int(
            "flows.capacity",
            raw.capacity,
            1 << 20,
            1,
            MAX_FLOW_CAPACITY as i64,
        ) as usize,
        tcp_timeout: v.positive_duration(
            "flows.tcp_timeout",
            raw.tcp_timeout.as_ref(),
            Duration::from_secs(900),
        ),
        tcp_fin_timeout: v.positive_duration(
            "flows.tcp_fin_timeout",
            raw.tcp_fin_timeout.as_ref(),
            Duration::from_secs(30),
        ),
        udp_timeout: v.positive_duration(
            "flows.udp_timeout",
            raw.udp_timeout.as_ref(),
            Duration::from_secs(30),
        ),
    }
}

fn vrrp_instance(v: &mut Validator, p: &str, r: RawVrrp, top_interface: &str) -> VrrpInstance {
    let name = v.required_name(&format!("{p}.name"), r.name);
    let interface = match r.interface {
        None => top_interface.to_owned(),
        Some(i) => {
            let i = v.required_name(&format!("{p}.interface"), Some(i));
            v.ifname(&format!("{p}.interface"), &i);
            i
        }
    };
    let vrid = match r.vrid {
        None => {
            v.err(format!("{p}.vrid"), "is required (1..255)");
            1
        }
        Some(x) => v.int(&format!("{p}.vrid"), Some(x), 1, 1, 255),
    } as u8;
    // 255 is range-checked here and ownership-checked in vrrp_cross_checks.
    let priority = match r.priority.map(|RawInt(x)| x) {
        None => 100,
        Some(x) if (1..=255).contains(&x) => x,
        Some(_) => {
            v.err(
                format!("{p}.priority"),
                "must be between 1 and 254 (255 only for an address owner)",
            );
            100
        }
    } as u8;
    let version = match r.version.map(|RawInt(x)| x) {
        None => 3,
        Some(x @ (2 | 3)) => x as u8,
        Some(_) => {
            v.err(format!("{p}.version"), "must be 2 or 3");
            3
        }
    };
    let ai_path = format!("{p}.advert_interval");
    let mut advert_interval =
        v.duration(&ai_path, r.advert_interval.as_ref(), Duration::from_secs(1));
    let ai = advert_interval;
    if version == 2 && (ai.subsec_nanos() != 0 || !(1..=255).contains(&ai.as_secs())) {
        v.err(
            &ai_path,
            format!(
                "{} is not allowed with version 2: must be whole seconds between 1s and 255s",
                format_duration(ai)
            ),
        );
        advert_interval = Duration::from_secs(1);
    } else if version == 3
        && (ai.as_nanos() % 10_000_000 != 0
            || ai < Duration::from_millis(10)
            || ai > Duration::from_millis(40_950))
    {
        v.err(
            &ai_path,
            format!("{} is not allowed with version 3: must be a multiple of 10ms between 10ms and 40.95s", format_duration(ai)),
        );
        advert_interval = Duration::from_secs(1);
    }
    let preempt_delay_path = format!("{p}.preempt_delay");
    let mut preempt_delay = v.duration(
        &preempt_delay_path,
        r.preempt_delay.as_ref(),
        Duration::ZERO,
    );
    if preempt_delay > Duration::from_secs(1000) {
        v.err(&preempt_delay_path, "must not exceed 1000s");
        preempt_delay = Duration::ZERO;
    }

    let mut unicast_peers = Vec::new();
    for (i, text) in r.unicast_peers.unwrap_or_default().iter().enumerate() {
        let path = format!("{p}.unicast_peers[{i}]");
        if let Some(ip) = v.ip(&path, text) {
            if let Some(j) = unicast_peers.iter().position(|o| *o == ip) {
                v.err(
                    path,
                    format!("duplicate peer {ip} (also unicast_peers[{j}])"),
                );
            } else {
                unicast_peers.push(ip);
            }
        }
    }
    let unicast_src_ip = r
        .unicast_src_ip
        .and_then(|t| v.ip(&format!("{p}.unicast_src_ip"), &t));

    let auth_pass = match r.auth_pass {
        None => None,
        Some(pass) => {
            let path = format!("{p}.auth_pass");
            if version != 2 {
                v.err(
                    &path,
                    "only valid with version 2 (VRRPv3 has no authentication)",
                );
            } else if pass.is_empty() || pass.len() > 8 {
                v.err(&path, "must be 1 to 8 bytes (the VRRPv2 simple password)");
            }
            Some(pass)
        }
    };
    let v3_checksum_as_v2 = r.v3_checksum_as_v2.unwrap_or(false);
    if v3_checksum_as_v2 && version == 2 {
        v.err(
            format!("{p}.v3_checksum_as_v2"),
            "only applies to version 3",
        );
    }
    let garp_master_repeat = v.int(
        &format!("{p}.garp_master_repeat"),
        r.garp_master_repeat,
        5,
        1,
        255,
    ) as u32;
    let garp_master_refresh_delay = v.duration(
        &format!("{p}.garp_master_refresh_delay"),
        r.garp_master_refresh_delay.as_ref(),
        Duration::from_secs(5),
    );

    let track_interfaces = match r.track_interfaces {
        None if interface.is_empty() => Vec::new(),
        None => vec![interface.clone()],
        Some(list) => {
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for (i, name) in list.into_iter().enumerate() {
                let path = format!("{p}.track_interfaces[{i}]");
                if name.is_empty() {
                    v.err(path, "must not be empty");
                } else if out.contains(&name) {
                    v.err(path, format!("{name:?} is listed twice"));
                } else {
                    v.ifname(&path, &name);
                    out.push(name);
                }
            }
            out
        }
    };
    let n = r.notify.unwrap_or_default();
    let notify = Notify {
        master: v.optional_text(&format!("{p}.notify.master"), n.master),
        backup: v.optional_text(&format!("{p}.notify.backup"), n.backup),
        fault: v.optional_text(&format!("{p}.notify.fault"), n.fault),
    };

    VrrpInstance {
        name,
        interface,
        vrid,
        priority,
        version,
        advert_interval,
        preempt: r.preempt.unwrap_or(true),
        preempt_delay,
        unicast_peers,
        unicast_src_ip,
        auth_pass,
        v3_checksum_as_v2,
        garp_master_repeat,
        garp_master_refresh_delay,
        track_interfaces,
        notify,
    }
}

fn virtual_server(
    v: &mut Validator,
    idx: usize,
    r: RawVirtualServer,
    instances: &[VrrpInstance],
) -> VirtualServer {
    let p = format!("virtual_servers[{idx}]");
    let name = v.required_name(&format!("{p}.name"), r.name);
    let vip = match r.vip {
        None => {
            v.err(format!("{p}.vip"), "is required");
            None
        }
        Some(t) => v.ip(&format!("{p}.vip"), &t),
    };
    if let Some(ip) = vip {
        let bad = ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST);
        if bad {
            v.err(format!("{p}.vip"), format!("{ip} is not a unicast address"));
        }
    }

    let mut ports: Vec<u16> = Vec::new();
    // True only for a valid `ports: []` (not when every listed port was rejected).
    let every_port = matches!(&r.ports, Some(list) if list.is_empty());
    match r.ports {
        None => v.err(
            format!("{p}.ports"),
            "is required (a list of ports; [] means every port)",
        ),
        Some(list) => {
            for (i, RawInt(port)) in list.into_iter().enumerate() {
                let path = format!("{p}.ports[{i}]");
                if !(1..=65535).contains(&port) {
                    v.err(path, "must be between 1 and 65535");
                } else if ports.contains(&(port as u16)) {
                    v.err(path, format!("port {port} is listed twice"));
                } else {
                    ports.push(port as u16);
                }
            }
        }
    }
    let protocol = match r.protocol {
        None | Some(RawProtocol::Tcp) => Protocol::Tcp,
        Some(RawProtocol::Udp) => Protocol::Udp,
    };
    // `scheduler` has one value for now; serde has already rejected any other.
    let _ = r.scheduler;

    let vrrp = r.vrrp.and_then(|inst| {
        let path = format!("{p}.vrrp");
        if inst.is_empty() {
            v.err(path, "must not be empty (leave it out or write null)");
            None
        } else if instances.iter().any(|i| i.name == inst) {
            Some(inst)
        } else {
            let known: Vec<&str> = instances
                .iter()
                .map(|i| i.name.as_str())
                .filter(|n| !n.is_empty())
                .collect();
            let known = if known.is_empty() {
                "there is no vrrp section".to_owned()
            } else {
                format!("instances: {}", known.join(", "))
            };
            v.err(path, format!("unknown VRRP instance {inst:?} ({known})"));
            None
        }
    });

    let sorry_server = r.sorry_server.and_then(|t| {
        let path = format!("{p}.sorry_server");
        let ip = v.ip(&path, &t)?;
        if let Some(vip) = vip {
            if ip.is_ipv4() != vip.is_ipv4() {
                v.err(
                    path,
                    format!(
                        "{ip} is {} but the VIP {vip} is {}",
                        family(&ip),
                        family(&vip)
                    ),
                );
            }
        }
        Some(ip)
    });
    let on_down = match r.on_down {
        None | Some(RawOnDown::Reschedule) => OnDown::Reschedule,
        Some(RawOnDown::Drop) => OnDown::Drop,
    };

    let mut real_servers: Vec<RealServer> = Vec::new();
    let raw_reals = match r.real_servers {
        None => {
            v.err(
                format!("{p}.real_servers"),
                "is required (a list; [] for none)",
            );
            Vec::new()
        }
        Some(list) => list,
    };
    let n_reals = raw_reals.len();
    for (j, rr) in raw_reals.into_iter().enumerate() {
        let rp = format!("{p}.real_servers[{j}]");
        if let Some(rs) = real_server(v, &rp, rr, vip, &ports, every_port) {
            if let Some(k) = real_servers.iter().position(|o| o.address == rs.address) {
                v.err(
                    format!("{rp}.address"),
                    format!(
                        "duplicate real server {} (also real_servers[{k}])",
                        rs.address
                    ),
                );
            }
            real_servers.push(rs);
        }
    }

    let ts_path = format!("{p}.table_size");
    let table_size = match r.table_size {
        None => DEFAULT_TABLE_SIZE as i64,
        Some(RawInt(t)) => t,
    };
    let min = 100 * n_reals as i64;
    if !(2..=MAX_TABLE_SIZE as i64).contains(&table_size) {
        v.err(
            &ts_path,
            format!("must be a prime between 2 and {MAX_TABLE_SIZE}"),
        );
    } else if !is_prime(table_size as u64) {
        let hint = next_prime(table_size.max(min) as u64)
            .map(|n| format!("; the next prime is {n}"))
            .unwrap_or_default();
        v.err(
            &ts_path,
            format!("{table_size} is not prime (Maglev needs a prime table size{hint})"),
        );
    } else if table_size < min {
        let hint = next_prime(min as u64)
            .map(|n| format!(", e.g. {n}"))
            .unwrap_or_default();
        v.err(
            &ts_path,
            format!("must be at least 100 x the number of real servers ({n_reals} real servers: a prime >= {min}{hint})"),
        );
    }

    VirtualServer {
        name,
        vip: vip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ports,
        protocol,
        table_size: table_size.clamp(0, MAX_TABLE_SIZE as i64) as usize,
        vrrp,
        sorry_server,
        on_down,
        inhibit_on_failure: r.inhibit_on_failure.unwrap_or(false),
        real_servers,
    }
}

fn real_server(
    v: &mut Validator,
    rp: &str,
    r: RawRealServer,
    vip: Option<IpAddr>,
    ports: &[u16],
    every_port: bool,
) -> Option<RealServer> {
    let address = match r.address {
        None => {
            v.err(format!("{rp}.address"), "is required");
            None
        }
        Some(t) => v.ip(&format!("{rp}.address"), &t),
    };
    if let (Some(a), Some(vip)) = (address, vip) {
        if a.is_ipv4() != vip.is_ipv4() {
            v.err(
                format!("{rp}.address"),
                format!(
                    "{a} is {} but the VIP {vip} is {}",
                    family(&a),
                    family(&vip)
                ),
            );
        } else if a == vip {
            v.err(format!("{rp}.address"), "must not be the VIP itself");
        }
    }
    if let Some(a) = address {
        if a.is_unspecified() || a.is_multicast() || a == IpAddr::V4(Ipv4Addr::BROADCAST) {
            v.err(
                format!("{rp}.address"),
                format!("{a} is not a unicast address"),
            );
        }
    }
    let mac = r.mac.and_then(|t| match parse_mac(&t) {
        Ok(m) => Some(m),
        Err(msg) => {
            v.err(format!("{rp}.mac"), msg);
            None
        }
    });
    let weight = v.int(&format!("{rp}.weight"), r.weight, 1, 0, 65535) as u32;
    let notify_up = v.optional_text(&format!("{rp}.notify_up"), r.notify_up);
    let notify_down = v.optional_text(&format!("{rp}.notify_down"), r.notify_down);
    let check = r
        .check
        .map(|c| check(v, &format!("{rp}.check"), c, ports, every_port));
    Some(RealServer {
        address: address?,
        mac,
        weight,
        notify_up,
        notify_down,
        check: check.flatten(),
    })
}

/// Parse "aa:bb:cc:dd:ee:ff" (or with '-') into a unicast MAC.
fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{text:?} is not a MAC address like \"aa:bb:cc:dd:ee:ff\"");
    let sep = if text.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut n = 0;
    for part in text.split(sep) {
        if n == 6 || part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        mac[n] = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        n += 1;
    }
    if n != 6 {
        return Err(bad());
    }
    if mac == [0; 6] || mac[0] & 1 == 1 {
        return Err(format!("{text:?} is not a unicast MAC address"));
    }
    Ok(mac)
}

fn check(
    v: &mut Validator,
    cp: &str,
    c: RawCheck,
    ports: &[u16],
    every_port: bool,
) -> Option<Check> {
    let kind_tag = match c.kind {
        None => {
            v.err(format!("{cp}.type"), "is required (tcp, http or exec)");
            None
        }
        Some(k) => Some(k),
    };
    let is_http = kind_tag == Some(RawCheckType::Http);
    let is_exec = kind_tag == Some(RawCheckType::Exec);
    if kind_tag.is_some() {
        let http_only = [
            ("path", c.path.is_some()),
            ("host", c.host.is_some()),
            ("status", c.status.is_some()),
            ("body_contains", c.body_contains.is_some()),
            ("digest", c.digest.is_some()),
        ];
        for (key, present) in http_only {
            if present && !is_http {
                v.err(format!("{cp}.{key}"), "only valid for http checks");
            }
        }
        if c.command.is_some() && !is_exec {
            v.err(format!("{cp}.command"), "only valid for exec checks");
        }
    }

    let port = match c.port {
        Some(p) => v.int(&format!("{cp}.port"), Some(p), 1, 1, 65535) as u16,
        None => match ports.first() {
            Some(&p) => p,
            None if is_exec || kind_tag.is_none() || !every_port => 0,
            None => {
                v.err(
                    format!("{cp}.port"),
                    "is required when the service has no ports (ports: [] means every port)",
                );
                0
            }
        },
    };

    let interval = v.positive_duration(
        &format!("{cp}.interval"),
        c.interval.as_ref(),
        Duration::from_secs(1),
    );
    let timeout = v.positive_duration(
        &format!("{cp}.timeout"),
        c.timeout.as_ref(),
        Duration::from_secs(1),
    );
    if timeout > interval {
        v.err(
            format!("{cp}.timeout"),
            format!(
                "{} must not exceed interval ({})",
                format_duration(timeout),
                format_duration(interval)
            ),
        );
    }
    let rise = v.int(&format!("{cp}.rise"), c.rise, 2, 1, 1000) as u32;
    let fall = v.int(&format!("{cp}.fall"), c.fall, 3, 1, 1000) as u32;
    let warmup = v.duration(&format!("{cp}.warmup"), c.warmup.as_ref(), Duration::ZERO);

    let kind = match kind_tag? {
        RawCheckType::Tcp => CheckKind::Tcp,
        RawCheckType::Exec => {
            let command = v.required_name(&format!("{cp}.command"), c.command);
            CheckKind::Exec { command }
        }
        RawCheckType::Http => {
            let path = c.path.unwrap_or_else(|| "/".to_owned());
            if !path.starts_with('/')
                || path.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            {
                v.err(
                    format!("{cp}.path"),
                    format!("{path:?} must start with / and contain no spaces"),
                );
            }
            let host = c.host;
            if let Some(h) = &host {
                if h.is_empty() || h.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                    v.err(
                        format!("{cp}.host"),
                        format!("{h:?} is not a valid Host header value"),
                    );
                }
            }
            let mut status = Vec::new();
            match c.status {
                None => status.push(200),
                Some(list) => {
                    if list.is_empty() {
                        v.err(format!("{cp}.status"), "must list at least one status code");
                    }
                    for (i, RawInt(s)) in list.into_iter().enumerate() {
                        if (100..=599).contains(&s) {
                            status.push(s as u16);
                        } else {
                            v.err(
                                format!("{cp}.status[{i}]"),
                                "must be an HTTP status code between 100 and 599",
                            );
                        }
                    }
                }
            }
            let body_contains = v.optional_text(&format!("{cp}.body_contains"), c.body_contains);
            let digest = c.digest.map(|d| {
                if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    v.err(
                        format!("{cp}.digest"),
                        "must be an MD5 digest: 32 hex digits",
                    );
                }
                d.to_ascii_lowercase()
            });
            CheckKind::Http {
                path,
                host,
                status,
                body_contains,
                digest,
            }
        }
    };
    Some(Check {
        kind,
        port,
        interval,
        timeout,
        rise,
        fall,
        warmup,
    })
}

/// Rules across services: unique names, no overlapping VIP:port:protocol, and a VIP named
/// in several services belongs to the same VRRP instance in each.
fn cross_service_checks(v: &mut Validator, services: &[VirtualServer]) {
    for (j, b) in services.iter().enumerate() {
        if !b.name.is_empty() {
            if let Some(i) = services[..j].iter().position(|a| a.name == b.name) {
                v.err(
                    format!("virtual_servers[{j}].name"),
                    format!(
                        "duplicate service name {:?} (also virtual_servers[{i}])",
                        b.name
                    ),
                );
            }
        }
        if b.vip.is_unspecified() {
            continue; // invalid VIP, already reported
        }
        for (i, a) in services[..j].iter().enumerate() {
            if a.vip != b.vip {
                continue;
            }
            if a.vrrp != b.vrrp {
                v.err(
                    format!("virtual_servers[{j}].vrrp"),
                    format!(
                        "VIP {} is owned by {} in virtual_servers[{i}] ({}); every service of one VIP must name the same vrrp instance",
                        b.vip,
                        a.vrrp.as_deref().map_or("no instance".to_owned(), |n| format!("{n:?}")),
                        a.name
                    ),
                );
            }
            if a.protocol != b.protocol {
                continue;
            }
            let overlap = if a.ports.is_empty() || b.ports.is_empty() {
                Some(None)
            } else {
                b.ports
                    .iter()
                    .find(|p| a.ports.contains(p))
                    .map(|p| Some(*p))
            };
            match overlap {
                None => {}
                Some(Some(port)) => v.err(
                    format!("virtual_servers[{j}].ports"),
                    format!(
                        "{} is already served by virtual_servers[{i}] ({})",
                        fmt_endpoint(b.vip, Some(port), b.protocol),
                        a.name
                    ),
                ),
                Some(None) => v.err(
                    format!("virtual_servers[{j}].ports"),
                    format!(
                        "overlaps virtual_servers[{i}] ({}) on {}: a service with ports [] takes every port of its VIP and protocol",
                        a.name,
                        fmt_endpoint(b.vip, None, b.protocol)
                    ),
                ),
            }
        }
    }
}

fn fmt_endpoint(ip: IpAddr, port: Option<u16>, proto: Protocol) -> String {
    match (ip, port) {
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}/{proto}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}/{proto}"),
        (a, None) => format!("{a} (every port)/{proto}"),
    }
}

/// Rules tying VRRP instances to the services they own: one address family per instance,
/// peers and source of that family, v2 only over IPv4, (interface, vrid, family) unique,
/// and priority 255 only for the owner of every VIP.
fn vrrp_cross_checks(v: &mut Validator, instances: &[VrrpInstance], services: &[VirtualServer]) {
    let mut families: Vec<Option<bool>> = Vec::with_capacity(instances.len()); // Some(is_v4)
    for (i, inst) in instances.iter().enumerate() {
        let p = format!("vrrp[{i}]");
        let mut vips: Vec<(IpAddr, &str)> = Vec::new();
        if !inst.name.is_empty() {
            for vs in services {
                if vs.vrrp.as_deref() == Some(inst.name.as_str())
                    && !vs.vip.is_unspecified()
                    && !vips.iter().any(|(a, _)| *a == vs.vip)
                {
                    vips.push((vs.vip, vs.name.as_str()));
                }
            }
        }
        let v4 = vips.iter().filter(|(a, _)| a.is_ipv4()).count();
        let fam_is_v4 = if v4 > 0 && v4 < vips.len() {
            v.err(
                format!("{p}.name"),
                format!(
                    "instance {:?} owns both IPv4 and IPv6 VIPs ({}); use one instance per address family",
                    inst.name,
                    vips.iter().map(|(a, n)| format!("{n}: {a}")).collect::<Vec<_>>().join(", ")
                ),
            );
            None
        } else if let Some((a, _)) = vips.first() {
            Some(a.is_ipv4())
        } else {
            inst.unicast_src_ip
                .or_else(|| inst.unicast_peers.first().copied())
                .map(|a| a.is_ipv4())
        };
        families.push(fam_is_v4);
        if let Some(is_v4) = fam_is_v4 {
            let fam = if is_v4 { "IPv4" } else { "IPv6" };
            if !is_v4 && inst.version == 2 {
                v.err(
                    format!("{p}.version"),
                    "version 2 is IPv4 only; use version 3 for IPv6",
                );
            }
            for (j, peer) in inst.unicast_peers.iter().enumerate() {
                if peer.is_ipv4() != is_v4 {
                    v.err(
                        format!("{p}.unicast_peers[{j}]"),
                        format!("{peer} is {} but the instance is {fam}", family(peer)),
                    );
                }
            }
            if let Some(src) = inst.unicast_src_ip {
                if src.is_ipv4() != is_v4 {
                    v.err(
                        format!("{p}.unicast_src_ip"),
                        format!("{src} is {} but the instance is {fam}", family(&src)),
                    );
                }
            }
            if let Some(j) = instances[..i].iter().enumerate().position(|(k, o)| {
                families[k] == Some(is_v4) && o.vrid == inst.vrid && o.interface == inst.interface
            }) {
                v.err(
                    format!("{p}.vrid"),
                    format!(
                        "VRID {} is already used on {} for {fam} by vrrp[{j}] ({})",
                        inst.vrid, inst.interface, instances[j].name
                    ),
                );
            }
        }
        if inst.priority == 255 {
            let path = format!("{p}.priority");
            if vips.is_empty() {
                v.err(
                    path,
                    "255 is reserved for the address owner, and this instance owns no VIP",
                );
            } else {
                let own = v.env.interface_addrs(&inst.interface);
                let missing: Vec<String> = vips
                    .iter()
                    .filter(|(a, _)| !own.contains(a))
                    .map(|(a, _)| a.to_string())
                    .collect();
                if !missing.is_empty() {
                    v.err(
                        path,
                        format!(
                            "255 is reserved for the address owner, and {} {} not an address of {} (use 1..254)",
                            missing.join(", "),
                            if missing.len() == 1 { "is" } else { "are" },
                            inst.interface
                        ),
                    );
                }
            }
        }
    }
}
