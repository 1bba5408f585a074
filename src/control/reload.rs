//! Hot reload: validate the new file, refuse what needs a restart, and describe the
//! difference the daemon then applies.
//!
//! [`prepare`] is the pure half of a reload (SIGHUP or `xlb reload`): it loads the file
//! with [`Config::load`] (every error collected), refuses keys listed by
//! [`Config::restart_needed`] plus the flow timeouts (fixed in the workers' flow tables
//! at start), and returns the new config with a [`ConfigDiff`]. The daemon applies it
//! (`daemon.rs`): replaces the controller's config, re-syncs the backend registry (ids are
//! stable per (service, address), so flows of real servers still present stay on them),
//! lets removed real servers drain, updates the XDP service map, publishes a snapshot and
//! restarts the VRRP instances whose own settings or VIP sets changed.
//!
//! Guarantees: a reload that returns an error changes nothing; [`ConfigDiff::between`] of
//! a config with itself is empty; every change the diff lists is one a reload applies.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::config::{Config, ConfigError, Environment, VirtualServer};

/// A reload asked for over the control socket (`reply` set) or by SIGHUP.
#[derive(Debug)]
pub struct ReloadRequest {
    /// Where the outcome goes (the `xlb reload` client).
    pub reply: Option<oneshot::Sender<ReloadReply>>,
}

/// Why a reload was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read, does not parse, or breaks rules: every problem found.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The file changes keys that only a restart can apply.
    #[error("these keys changed and need a restart of xlb (the running configuration stays): {}", .0.join(", "))]
    RestartNeeded(Vec<&'static str>),
}

/// The outcome of a reload, as `xlb reload` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// "applied", "invalid" or "refused".
    pub result: String,
    /// Every validation error (invalid).
    pub errors: Vec<String>,
    /// Keys that need a restart (refused).
    pub restart_needed: Vec<String>,
    /// What changed (applied).
    pub changes: Vec<String>,
}

impl ReloadReply {
    /// Applied with these changes.
    pub fn applied(changes: Vec<String>) -> Self {
        ReloadReply {
            result: "applied".into(),
            errors: vec![],
            restart_needed: vec![],
            changes,
        }
    }

    /// Not applied: the file is invalid.
    pub fn invalid(errors: Vec<String>) -> Self {
        ReloadReply {
            result: "invalid".into(),
            errors,
            restart_needed: vec![],
            changes: vec![],
        }
    }

    /// Not applied: restart needed for these keys.
    pub fn refused(keys: &[&'static str]) -> Self {
        ReloadReply {
            result: "refused".into(),
            errors: vec![],
            restart_needed: keys.iter().map(|k| (*k).to_owned()).collect(),
            changes: vec![],
        }
    }

    /// From a failed [`prepare`].
    pub fn from_error(e: &ReloadError) -> Self {
        match e {
            ReloadError::Invalid(errs) => Self::invalid(errs.clone()),
            ReloadError::RestartNeeded(keys) => Self::refused(keys),
        }
    }
}

/// What a reload changes. Real servers are named by (service, address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// New virtual services.
    pub services_added: Vec<String>,
    /// Removed virtual services.
    pub services_removed: Vec<String>,
    /// Services whose own settings (VIP, ports, protocol, table size, VRRP owner, sorry
    /// server, on_down, inhibit) changed.
    pub services_changed: Vec<String>,
    /// New real servers.
    pub real_servers_added: Vec<(String, IpAddr)>,
    /// Removed real servers (they drain: established flows stay until they end).
    pub real_servers_removed: Vec<(String, IpAddr)>,
    /// (service, address, old weight, new weight).
    pub weights_changed: Vec<(String, IpAddr, u32, u32)>,
    /// Real servers whose health check, MAC or notify commands changed.
    pub real_servers_changed: Vec<(String, IpAddr)>,
    /// Real servers whose health check changed (added, removed or altered).
    pub checks_changed: Vec<(String, IpAddr)>,
    /// New VRRP instances.
    pub vrrp_added: Vec<String>,
    /// Removed VRRP instances.
    pub vrrp_removed: Vec<String>,
    /// VRRP instances whose settings or owned VIPs changed (restarted on reload).
    pub vrrp_changed: Vec<String>,
}

fn service_settings_differ(a: &VirtualServer, b: &VirtualServer) -> bool {
    a.vip != b.vip
        || a.ports != b.ports
        || a.protocol != b.protocol
        || a.table_size != b.table_size
        || a.vrrp != b.vrrp
        || a.sorry_server != b.sorry_server
        || a.on_down != b.on_down
        || a.inhibit_on_failure != b.inhibit_on_failure
}

impl ConfigDiff {
    /// The difference from `old` (running) to `new`.
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let mut d = ConfigDiff::default();
        for n in &new.virtual_servers {
            let Some(o) = old.virtual_servers.iter().find(|o| o.name == n.name) else {
                d.services_added.push(n.name.clone());
                d.real_servers_added
                    .extend(n.real_servers.iter().map(|r| (n.name.clone(), r.address)));
                d.checks_changed.extend(
                    n.real_servers
                        .iter()
                        .filter(|r| r.check.is_some())
                        .map(|r| (n.name.clone(), r.address)),
                );
                continue;
            };
            if service_settings_differ(o, n) {
                d.services_changed.push(n.name.clone());
            }
            for nr in &n.real_servers {
                let key = (n.name.clone(), nr.address);
                match o.real_servers.iter().find(|r| r.address == nr.address) {
                    None => {
                        if nr.check.is_some() {
                            d.checks_changed.push(key.clone());
                        }
                        d.real_servers_added.push(key);
                    }
                    Some(or) => {
                        if or.weight != nr.weight {
                            d.weights_changed
                                .push((key.0.clone(), key.1, or.weight, nr.weight));
                        }
                        if or.check != nr.check {
                            d.checks_changed.push(key.clone());
                        }
                        if or.check != nr.check
                            || or.mac != nr.mac
                            || or.notify_up != nr.notify_up
                            || or.notify_down != nr.notify_down
                        {
                            d.real_servers_changed.push(key);
                        }
                    }
                }
            }
            for or in &o.real_servers {
                if !n.real_servers.iter().any(|r| r.address == or.address) {
                    d.real_servers_removed.push((n.name.clone(), or.address));
                    if or.check.is_some() {
                        d.checks_changed.push((n.name.clone(), or.address));
                    }
                }
            }
        }
        for o in &old.virtual_servers {
            if !new.virtual_servers.iter().any(|n| n.name == o.name) {
                d.services_removed.push(o.name.clone());
                d.real_servers_removed
                    .extend(o.real_servers.iter().map(|r| (o.name.clone(), r.address)));
                d.checks_changed.extend(
                    o.real_servers
                        .iter()
                        .filter(|r| r.check.is_some())
                        .map(|r| (o.name.clone(), r.address)),
                );
            }
        }
        for n in &new.vrrp {
            match old.vrrp.iter().find(|o| o.name == n.name) {
                None => d.vrrp_added.push(n.name.clone()),
                Some(o) => {
                    if o != n || old.vips_of(&o.name) != new.vips_of(&n.name) {
                        d.vrrp_changed.push(n.name.clone());
                    }
                }
            }
        }
        for o in &old.vrrp {
            if !new.vrrp.iter().any(|n| n.name == o.name) {
                d.vrrp_removed.push(o.name.clone());
            }
        }
        d
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }

    /// One human-readable line per change, for logs and `xlb reload`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        let rs = |v: &[(String, IpAddr)], what: &str, out: &mut Vec<String>| {
            for (s, a) in v {
                out.push(format!("{what} real server {a} of {s}"));
            }
        };
        for s in &self.services_added {
            out.push(format!("added virtual service {s}"));
        }
        for s in &self.services_removed {
            out.push(format!("removed virtual service {s}"));
        }
        for s in &self.services_changed {
            out.push(format!("changed virtual service {s}"));
        }
        rs(&self.real_servers_added, "added", &mut out);
        rs(&self.real_servers_removed, "removed (draining)", &mut out);
        for (s, a, o, n) in &self.weights_changed {
            out.push(format!("weight of real server {a} of {s}: {o} -> {n}"));
        }
        rs(&self.real_servers_changed, "changed", &mut out);
        for v in &self.vrrp_added {
            out.push(format!("added VRRP instance {v}"));
        }
        for v in &self.vrrp_removed {
            out.push(format!("removed VRRP instance {v}"));
        }
        for v in &self.vrrp_changed {
            out.push(format!(
                "restarted VRRP instance {v} (its settings or VIPs changed)"
            ));
        }
        out
    }
}

/// Keys a reload refuses: [`Config::restart_needed`] plus the flow timeouts, which the
/// workers' flow tables fix at start.
pub fn restart_keys(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = old.restart_needed(new);
    if old.flows.tcp_timeout != new.flows.tcp_timeout {
        keys.push("flows.tcp_timeout");
    }
    if old.flows.tcp_fin_timeout != new.flows.tcp_fin_timeout {
        keys.push("flows.tcp_fin_timeout");
    }
    if old.flows.udp_timeout != new.flows.udp_timeout {
        keys.push("flows.udp_timeout");
    }
    keys
}

/// Every problem of a failed load, one line each (as `xlb check-config` prints them).
pub fn error_lines(path: &Path, e: &ConfigError) -> Vec<String> {
    let shown = path.display();
    match e {
        ConfigError::Io { .. } => vec![e.to_string()],
        ConfigError::Syntax {
            line,
            column,
            message,
        } => vec![format!("{shown}:{line}:{column}: {message}")],
        ConfigError::Invalid(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// Loads and checks the file at `path` against the running config. Changes nothing.
pub fn prepare(
    running: &Config,
    path: &Path,
    env: &dyn Environment,
) -> Result<(Config, ConfigDiff), ReloadError> {
    let new = Config::load(path, env).map_err(|e| ReloadError::Invalid(error_lines(path, &e)))?;
    let keys = restart_keys(running, &new);
    if !keys.is_empty() {
        return Err(ReloadError::RestartNeeded(keys));
    }
    let diff = ConfigDiff::between(running, &new);
    Ok((new, diff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticEnvironment;

    fn env() -> StaticEnvironment {
        StaticEnvironment::new(4).with_interface("eth0", &["10.0.0.2".parse().unwrap()])
    }

    const BASE: &str = r#"
interface: eth0
virtual_servers:
  - name: web
    vip: 10.0.0.100
    ports: [80]
    real_servers:
      - { address: 10.0.0.11, weight: 1 }
      - { address: 10.0.0.12, weight: 1 }
  - name: dns
    vip: 10.0.0.100
    ports: [53]
    protocol: udp
    real_servers:
      - { address: 10.0.0.11 }
"#;

    fn cfg(text: &str) -> Config {
        Config::from_yaml(text, &env()).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn same_config_is_an_empty_diff() {
        let c = cfg(BASE);
        let d = ConfigDiff::between(&c, &c);
        assert!(d.is_empty(), "{d:?}");
        assert!(d.describe().is_empty());
    }

    #[test]
    fn weights_additions_and_removals_are_listed() {
        let old = cfg(BASE);
        let new = cfg(&BASE
            .replace(
                "      - { address: 10.0.0.12, weight: 1 }",
                "      - { address: 10.0.0.12, weight: 5 }\n      - { address: 10.0.0.13, weight: 1, check: { type: tcp } }",
            )
            .replace("      - { address: 10.0.0.11 }\n", "      - { address: 10.0.0.14 }\n"));
        let d = ConfigDiff::between(&old, &new);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            d.weights_changed,
            vec![("web".into(), ip("10.0.0.12"), 1, 5)]
        );
        assert_eq!(
            d.real_servers_added,
            vec![
                ("web".into(), ip("10.0.0.13")),
                ("dns".into(), ip("10.0.0.14"))
            ]
        );
        assert_eq!(
            d.real_servers_removed,
            vec![("dns".into(), ip("10.0.0.11"))]
        );
        assert_eq!(d.checks_changed, vec![("web".into(), ip("10.0.0.13"))]);
        assert!(d.services_added.is_empty() && d.services_removed.is_empty());
        let text = d.describe().join("\n");
        assert!(
            text.contains("weight of real server 10.0.0.12 of web: 1 -> 5"),
            "{text}"
        );
    }

    #[test]
    fn services_added_and_removed_bring_their_real_servers() {
        let old = cfg(BASE);
        let new = cfg(&BASE.replace("name: dns", "name: dns2"));
        let d = ConfigDiff::between(&old, &new);
        assert_eq!(d.services_added, vec!["dns2".to_string()]);
        assert_eq!(d.services_removed, vec!["dns".to_string()]);
        assert_eq!(d.real_servers_added.len(), 1);
        assert_eq!(d.real_servers_removed.len(), 1);
    }

    #[test]
    fn vrrp_instance_restarts_when_its_settings_or_vips_change() {
        let with_vrrp = |prio: u8, owner_dns: bool| {
            let mut t = format!(
                "vrrp:\n  - {{ name: VI_1, vrid: 51, priority: {prio} }}\n{}",
                BASE.replace("ports: [80]", "ports: [80]\n    vrrp: VI_1")
                    .replace(
                        "vip: 10.0.0.100\n    ports: [53]",
                        "vip: 10.0.0.101\n    ports: [53]"
                    )
            );
            if owner_dns {
                t = t.replace("ports: [53]", "ports: [53]\n    vrrp: VI_1");
            }
            cfg(&t)
        };
        let a = with_vrrp(100, false);
        assert!(ConfigDiff::between(&a, &with_vrrp(100, false)).is_empty());
        let d = ConfigDiff::between(&a, &with_vrrp(150, false));
        assert_eq!(d.vrrp_changed, vec!["VI_1".to_string()]);
        assert!(d.services_changed.is_empty());
        // The instance now also owns dns's VIP: restarted, and dns changed owner.
        let d = ConfigDiff::between(&a, &with_vrrp(100, true));
        assert_eq!(d.vrrp_changed, vec!["VI_1".to_string()]);
        assert_eq!(d.services_changed, vec!["dns".to_string()]);
        let d = ConfigDiff::between(&a, &cfg(BASE));
        assert_eq!(d.vrrp_removed, vec!["VI_1".to_string()]);
    }

    #[test]
    fn prepare_lists_every_error_and_refuses_restart_keys() {
        let dir = std::env::temp_dir().join(format!("xlb-reload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("xlb.yaml");
        let running = cfg(BASE);

        std::fs::write(
            &path,
            BASE.replace(
                "weight: 1 }\n      - { address: 10.0.0.12",
                "weight: 70000 }\n      - { address: 10.0.0.12",
            )
            .replace("ports: [53]", "ports: [99999]"),
        )
        .unwrap();
        match prepare(&running, &path, &env()) {
            Err(ReloadError::Invalid(errs)) => assert!(!errs.is_empty(), "{errs:?}"),
            other => panic!("{other:?}"),
        }

        std::fs::write(
            &path,
            BASE.replace(
                "vip: 10.0.0.100\n    ports: [53]",
                "vip: 10.0.0.100\n    ports: [54]",
            ),
        )
        .unwrap();
        let (new, d) = prepare(&running, &path, &env()).unwrap();
        assert_eq!(new.virtual_servers[1].ports, vec![54]);
        assert_eq!(d.services_changed, vec!["dns".to_string()]);

        std::fs::write(
            &path,
            format!("xdp_mode: generic\nflows: {{ tcp_timeout: 60s }}\n{BASE}"),
        )
        .unwrap();
        match prepare(&running, &path, &env()) {
            Err(ReloadError::RestartNeeded(keys)) => {
                assert_eq!(keys, vec!["xdp_mode", "flows.tcp_timeout"])
            }
            other => panic!("{other:?}"),
        }

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            prepare(&running, &path, &env()),
            Err(ReloadError::Invalid(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
