//! The configuration contract: a valid baseline parsed into exact typed values, then a
//! table of mutations of it, each expecting a specific YAML path and message; syntax
//! errors with line and column; the duration parser; and `config.example.yaml`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_yaml::Value;
use xlb::config::*;

const BASELINE: &str = include_str!("fixtures/config/baseline.yaml");
const EXAMPLE: &str = include_str!("../config.example.yaml");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// 4 CPUs; eth0 holds 192.168.5.1 (not the VIP) and eth1 nothing.
fn env() -> StaticEnvironment {
    StaticEnvironment::new(4)
        .with_interface("eth0", &[ip("192.168.5.1"), ip("fe80::1")])
        .with_interface("eth1", &[])
}

fn baseline() -> Value {
    serde_yaml::from_str(BASELINE).unwrap()
}

/// Set (or with `None` remove) the value at a dotted path such as
/// `virtual_servers.0.real_servers.1.weight`; a missing last key is inserted.
fn edit(doc: &mut Value, path: &str, new: Option<&str>) {
    let keys: Vec<&str> = path.split('.').collect();
    let (last, parents) = keys.split_last().unwrap();
    let mut cur = doc;
    for k in parents {
        cur = match k.parse::<usize>() {
            Ok(i) => &mut cur.as_sequence_mut().unwrap()[i],
            Err(_) => cur
                .as_mapping_mut()
                .unwrap()
                .get_mut(*k)
                .unwrap_or_else(|| panic!("no key {k} in {path}")),
        };
    }
    match (last.parse::<usize>(), new) {
        (Ok(i), Some(v)) => cur.as_sequence_mut().unwrap()[i] = serde_yaml::from_str(v).unwrap(),
        (Ok(i), None) => {
            cur.as_sequence_mut().unwrap().remove(i);
        }
        (Err(_), Some(v)) => {
            cur.as_mapping_mut()
                .unwrap()
                .insert(Value::from(*last), serde_yaml::from_str(v).unwrap());
        }
        (Err(_), None) => {
            cur.as_mapping_mut().unwrap().remove(*last);
        }
    }
}

fn load_value(doc: &Value, env: &dyn Environment) -> Result<Config, ConfigError> {
    Config::from_yaml(&serde_yaml::to_string(doc).unwrap(), env)
}

fn invalid(doc: &Value, env: &dyn Environment) -> Vec<ValidationError> {
    match load_value(doc, env) {
        Err(ConfigError::Invalid(errors)) => errors,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

#[test]
fn baseline_parses_into_exact_typed_values() {
    let c = Config::from_yaml(BASELINE, &env()).unwrap();
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.xdp_mode, XdpMode::Generic);
    assert_eq!(
        c.workers,
        Workers {
            queues: Queues::List(vec![0, 1]),
            cores: vec![1, 2],
            batch_size: 32,
            frames: 2048,
            sched: WorkerSched::Fifo(1),
        }
    );
    assert_eq!(
        c.flows,
        Flows {
            capacity: 65536,
            tcp_timeout: Duration::from_secs(600),
            tcp_fin_timeout: Duration::from_secs(15),
            udp_timeout: Duration::from_millis(1500)
        }
    );
    assert_eq!(c.metrics.listen, "[::1]:9651".parse().unwrap());
    assert_eq!(c.control_socket, Path::new("/tmp/xlb-test.sock"));

    assert_eq!(c.vrrp.len(), 3);
    let vi1 = &c.vrrp[0];
    assert_eq!(
        *vi1,
        VrrpInstance {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority: 150,
            version: 3,
            advert_interval: Duration::from_secs(1),
            preempt: false,
            preempt_delay: Duration::from_secs(5),
            unicast_peers: vec![ip("192.168.5.2")],
            unicast_src_ip: Some(ip("192.168.5.1")),
            auth_pass: None,
            v3_checksum_as_v2: false,
            garp_master_repeat: 3,
            garp_master_refresh_delay: Duration::ZERO,
            track_interfaces: vec!["eth0".into(), "eth1".into()],
            notify: Notify {
                master: Some("/etc/xlb/notify.sh master".into()),
                backup: None,
                fault: None
            },
        }
    );
    // Defaults of an instance that sets little.
    let vi6 = &c.vrrp[1];
    assert_eq!(vi6.interface, "eth0", "defaults to the top-level interface");
    assert_eq!(vi6.track_interfaces, vec!["eth0".to_string()]);
    assert_eq!((vi6.priority, vi6.version), (100, 3));
    assert_eq!(vi6.advert_interval, Duration::from_millis(100));
    assert!(vi6.preempt && vi6.v3_checksum_as_v2);
    assert_eq!(vi6.garp_master_repeat, 5);
    assert_eq!(vi6.garp_master_refresh_delay, Duration::from_secs(5));
    assert_eq!(c.vrrp[2].auth_pass.as_deref(), Some("secret"));
    assert_eq!(c.vrrp[2].advert_interval, Duration::from_secs(2));

    let web = &c.virtual_servers[0];
    assert_eq!(web.vip, ip("192.168.5.188"));
    assert_eq!(web.ports, vec![80, 443]);
    assert_eq!(web.protocol, Protocol::Tcp);
    assert_eq!(web.table_size, 65537);
    assert_eq!(web.vrrp.as_deref(), Some("VI_1"));
    assert_eq!(web.sorry_server, Some(ip("192.168.5.200")));
    assert_eq!(web.on_down, OnDown::Drop);
    assert!(web.inhibit_on_failure);
    let rs0 = &web.real_servers[0];
    assert_eq!(rs0.mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
    assert_eq!(rs0.notify_up.as_deref(), Some("logger up"));
    assert_eq!(
        rs0.check,
        Some(Check {
            kind: CheckKind::Http {
                path: "/health".into(),
                host: Some("www.example.com".into()),
                status: vec![200, 204],
                body_contains: Some("ok".into()),
                digest: Some("0123456789abcdef0123456789abcdef".into()),
            },
            port: 8080,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(2),
            rise: 1,
            fall: 5,
            warmup: Duration::from_secs(10),
        })
    );
    let rs1 = &web.real_servers[1];
    assert_eq!(rs1.weight, 0);
    let chk = rs1.check.as_ref().unwrap();
    assert_eq!(chk.kind, CheckKind::Tcp);
    assert_eq!(chk.port, 80, "defaults to the service's first port");
    assert_eq!((chk.rise, chk.fall), (2, 3));
    assert_eq!(chk.timeout, Duration::from_millis(500));

    let dns = &c.virtual_servers[1];
    assert_eq!(dns.protocol, Protocol::Udp);
    assert!(dns.ports.is_empty());
    assert_eq!(dns.on_down, OnDown::Reschedule);
    let exec = dns.real_servers[0].check.as_ref().unwrap();
    assert_eq!(
        exec.kind,
        CheckKind::Exec {
            command: "/usr/local/bin/check-dns".into()
        }
    );
    assert_eq!(dns.real_servers[0].weight, 1);
    assert_eq!(dns.real_servers[0].mac, None);

    let web6 = &c.virtual_servers[2];
    assert_eq!(web6.table_size, DEFAULT_TABLE_SIZE);
    assert_eq!(
        web6.real_servers[0].mac,
        Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef])
    );
    let http = web6.real_servers[0].check.as_ref().unwrap();
    assert_eq!(http.port, 80);
    assert_eq!(
        http.kind,
        CheckKind::Http {
            path: "/".into(),
            host: None,
            status: vec![200],
            body_contains: None,
            digest: None
        }
    );

    assert_eq!(c.real_server_count(), 4);
    assert_eq!(c.vips_of("VI_1"), vec![ip("192.168.5.188")]);
    assert_eq!(c.vips_of("VI_6"), vec![ip("2001:db8::188")]);
}

#[test]
fn minimal_config_takes_documented_defaults() {
    let text = "interface: eth0\nvirtual_servers: []\n";
    let c = Config::from_yaml(text, &StaticEnvironment::new(4)).unwrap();
    assert_eq!(c.xdp_mode, XdpMode::Native);
    assert_eq!(c.workers.queues, Queues::All);
    assert_eq!(c.workers.cores, vec![1, 2, 3], "every core but 0");
    assert_eq!((c.workers.batch_size, c.workers.frames), (64, 4096));
    assert_eq!(c.flows.capacity, 1_048_576);
    assert_eq!(c.flows.tcp_timeout, Duration::from_secs(900));
    assert_eq!(c.flows.tcp_fin_timeout, Duration::from_secs(30));
    assert_eq!(c.flows.udp_timeout, Duration::from_secs(30));
    assert_eq!(c.metrics.listen, "127.0.0.1:9650".parse().unwrap());
    assert_eq!(c.control_socket, Path::new("/run/xlb.sock"));
    assert!(c.vrrp.is_empty() && c.virtual_servers.is_empty());

    let one_cpu = Config::from_yaml(text, &StaticEnvironment::new(1)).unwrap();
    assert_eq!(one_cpu.workers.cores, vec![0], "[0] on a one-core machine");
}

/// Edits to the baseline: (dotted path, new YAML value or `None` to remove).
type Edits = &'static [(&'static str, Option<&'static str>)];

/// (what, edits, expected path, message fragment). Each row starts from the baseline.
type Row = (&'static str, Edits, &'static str, &'static str);

#[rustfmt::skip]
const MUTATIONS: &[Row] = &[
    // top level
    ("interface missing", &[("interface", None)], "interface", "is required"),
    ("interface empty", &[("interface", Some("''"))], "interface", "must not be empty"),
    ("interface too long", &[("interface", Some("abcdefghijklmnopq"))], "interface", "not a valid interface name"),
    ("virtual_servers missing", &[("virtual_servers", None)], "virtual_servers", "is required"),
    // workers
    ("queues word", &[("workers.queues", Some("some"))], "workers.queues", "must be \"all\" or a list"),
    ("queues empty", &[("workers.queues", Some("[]"))], "workers.queues", "must not be empty"),
    ("queue twice", &[("workers.queues", Some("[0, 0]"))], "workers.queues[1]", "listed twice"),
    ("queue out of range", &[("workers.queues", Some("[4096]"))], "workers.queues[0]", "between 0 and 4095"),
    ("queue negative", &[("workers.queues", Some("[-1]"))], "workers.queues[0]", "between 0 and 4095"),
    ("core missing", &[("workers.cores", Some("[1, 9]"))], "workers.cores[1]", "core 9 does not exist: this machine has 4 CPUs"),
    ("core negative", &[("workers.cores", Some("[-1]"))], "workers.cores[0]", "does not exist"),
    ("core twice", &[("workers.cores", Some("[2, 2]"))], "workers.cores[1]", "listed twice"),
    ("cores empty", &[("workers.cores", Some("[]"))], "workers.cores", "must not be empty"),
    ("batch 0", &[("workers.batch_size", Some("0"))], "workers.batch_size", "must be between 1 and 1024"),
    ("batch too big", &[("workers.batch_size", Some("1025"))], "workers.batch_size", "must be between 1 and 1024"),
    ("frames not pow2", &[("workers.frames", Some("3000"))], "workers.frames", "power of two"),
    ("frames too big", &[("workers.frames", Some("2097152"))], "workers.frames", "power of two between 64 and 1048576"),
    ("frames < 2x batch", &[("workers.frames", Some("32"))], "workers.frames", "at least twice batch_size (64)"),
    ("sched garbage", &[("workers.sched", Some("rt"))], "workers.sched", "expected inherit, nice:N or fifo:N"),
    ("sched fifo 0", &[("workers.sched", Some("'fifo:0'"))], "workers.sched", "expected a number in 1..=99"),
    ("sched nice 20", &[("workers.sched", Some("'nice:20'"))], "workers.sched", "expected a number in -20..=19"),
    // flows
    ("capacity 0", &[("flows.capacity", Some("0"))], "flows.capacity", "must be between 1 and"),
    ("timeout zero", &[("flows.tcp_timeout", Some("0s"))], "flows.tcp_timeout", "must be greater than 0s"),
    ("timeout without unit", &[("flows.udp_timeout", Some("30"))], "flows.udp_timeout", "missing unit"),
    ("timeout negative", &[("flows.tcp_fin_timeout", Some("-1s"))], "flows.tcp_fin_timeout", "must not be negative"),
    ("timeout garbage", &[("flows.tcp_timeout", Some("soon"))], "flows.tcp_timeout", "invalid duration"),
    ("timeout bad unit", &[("flows.tcp_timeout", Some("5d"))], "flows.tcp_timeout", "unknown unit \"d\""),
    // metrics, control socket
    ("listen no port", &[("metrics.listen", Some("127.0.0.1"))], "metrics.listen", "not an address:port"),
    ("listen hostname", &[("metrics.listen", Some("localhost:9650"))], "metrics.listen", "not an address:port"),
    ("control socket empty", &[("control_socket", Some("''"))], "control_socket", "must not be empty"),
    (
        "control socket too long",
        &[("control_socket", Some("/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock"))],
        "control_socket",
        "at most 107 bytes",
    ),
    // vrrp instances
    ("instance name missing", &[("vrrp.0.name", None)], "vrrp[0].name", "is required"),
    ("instance name empty", &[("vrrp.0.name", Some("' '"))], "vrrp[0].name", "must not be empty"),
    ("instance name twice", &[("vrrp.2.name", Some("VI_1")), ("virtual_servers.1.vrrp", Some("VI_1"))], "vrrp[2].name", "duplicate instance name \"VI_1\" (also vrrp[0])"),
    ("instance interface bad", &[("vrrp.0.interface", Some("'eth 0'"))], "vrrp[0].interface", "not a valid interface name"),
    ("vrid missing", &[("vrrp.0.vrid", None)], "vrrp[0].vrid", "is required"),
    ("vrid 0", &[("vrrp.0.vrid", Some("0"))], "vrrp[0].vrid", "must be between 1 and 255"),
    ("vrid 256", &[("vrrp.0.vrid", Some("256"))], "vrrp[0].vrid", "must be between 1 and 255"),
    ("priority 0", &[("vrrp.0.priority", Some("0"))], "vrrp[0].priority", "must be between 1 and 254"),
    ("priority 256", &[("vrrp.0.priority", Some("256"))], "vrrp[0].priority", "255 only for an address owner"),
    ("priority 255 not owner", &[("vrrp.0.priority", Some("255"))], "vrrp[0].priority", "192.168.5.188 is not an address of eth0"),
    ("priority 255 without VIP", &[("vrrp.0.priority", Some("255")), ("virtual_servers.0.vrrp", None)], "vrrp[0].priority", "owns no VIP"),
    ("version 4", &[("vrrp.0.version", Some("4"))], "vrrp[0].version", "must be 2 or 3"),
    ("v2 fractional advert", &[("vrrp.2.advert_interval", Some("1500ms"))], "vrrp[2].advert_interval", "whole seconds between 1s and 255s"),
    ("v2 advert too long", &[("vrrp.2.advert_interval", Some("256s"))], "vrrp[2].advert_interval", "whole seconds"),
    ("v3 advert too short", &[("vrrp.0.advert_interval", Some("5ms"))], "vrrp[0].advert_interval", "multiple of 10ms between 10ms and 40.95s"),
    ("v3 advert not centiseconds", &[("vrrp.0.advert_interval", Some("15ms"))], "vrrp[0].advert_interval", "multiple of 10ms"),
    ("v3 advert too long", &[("vrrp.0.advert_interval", Some("41s"))], "vrrp[0].advert_interval", "40.95s"),
    ("v2 over IPv6", &[("vrrp.1.version", Some("2")), ("vrrp.1.advert_interval", Some("1s")), ("vrrp.1.v3_checksum_as_v2", None)], "vrrp[1].version", "version 2 is IPv4 only"),
    ("preempt delay too long", &[("vrrp.0.preempt_delay", Some("1001s"))], "vrrp[0].preempt_delay", "must not exceed 1000s"),
    ("peer wrong family", &[("vrrp.0.unicast_peers", Some("['2001:db8::2']"))], "vrrp[0].unicast_peers[0]", "2001:db8::2 is IPv6 but the instance is IPv4"),
    ("peer garbage", &[("vrrp.0.unicast_peers", Some("[router2]"))], "vrrp[0].unicast_peers[0]", "\"router2\" is not an IPv4 or IPv6 address"),
    ("peer twice", &[("vrrp.0.unicast_peers", Some("[192.168.5.2, 192.168.5.2]"))], "vrrp[0].unicast_peers[1]", "duplicate peer"),
    ("src wrong family", &[("vrrp.0.unicast_src_ip", Some("'::1'"))], "vrrp[0].unicast_src_ip", "::1 is IPv6 but the instance is IPv4"),
    ("auth_pass with v3", &[("vrrp.0.auth_pass", Some("secret"))], "vrrp[0].auth_pass", "only valid with version 2"),
    ("auth_pass too long", &[("vrrp.2.auth_pass", Some("123456789"))], "vrrp[2].auth_pass", "1 to 8 bytes"),
    ("auth_pass empty", &[("vrrp.2.auth_pass", Some("''"))], "vrrp[2].auth_pass", "1 to 8 bytes"),
    ("v3 checksum option on v2", &[("vrrp.2.v3_checksum_as_v2", Some("true"))], "vrrp[2].v3_checksum_as_v2", "only applies to version 3"),
    ("garp repeat 0", &[("vrrp.0.garp_master_repeat", Some("0"))], "vrrp[0].garp_master_repeat", "must be between 1 and 255"),
    ("garp delay garbage", &[("vrrp.0.garp_master_refresh_delay", Some("5"))], "vrrp[0].garp_master_refresh_delay", "missing unit"),
    ("track twice", &[("vrrp.0.track_interfaces", Some("[eth0, eth0]"))], "vrrp[0].track_interfaces[1]", "listed twice"),
    ("track empty name", &[("vrrp.0.track_interfaces", Some("['']"))], "vrrp[0].track_interfaces[0]", "must not be empty"),
    ("notify empty", &[("vrrp.0.notify.master", Some("''"))], "vrrp[0].notify.master", "must not be empty"),
    ("vrid reused same family", &[("vrrp.2.interface", Some("eth0")), ("vrrp.2.vrid", Some("51"))], "vrrp[2].vrid", "VRID 51 is already used on eth0 for IPv4 by vrrp[0] (VI_1)"),
    ("instance with both families", &[("virtual_servers.2.vrrp", Some("VI_1"))], "vrrp[0].name", "owns both IPv4 and IPv6 VIPs"),
    // virtual servers
    ("service name missing", &[("virtual_servers.0.name", None)], "virtual_servers[0].name", "is required"),
    ("service name twice", &[("virtual_servers.1.name", Some("web"))], "virtual_servers[1].name", "duplicate service name \"web\" (also virtual_servers[0])"),
    ("vip missing", &[("virtual_servers.0.vip", None)], "virtual_servers[0].vip", "is required"),
    ("vip garbage", &[("virtual_servers.0.vip", Some("192.168.5.300"))], "virtual_servers[0].vip", "not an IPv4 or IPv6 address"),
    ("vip multicast", &[("virtual_servers.0.vip", Some("224.0.0.18"))], "virtual_servers[0].vip", "not a unicast address"),
    ("vip unspecified", &[("virtual_servers.0.vip", Some("0.0.0.0"))], "virtual_servers[0].vip", "not a unicast address"),
    ("ports missing", &[("virtual_servers.0.ports", None)], "virtual_servers[0].ports", "is required"),
    ("port 0", &[("virtual_servers.0.ports", Some("[0]"))], "virtual_servers[0].ports[0]", "must be between 1 and 65535"),
    ("port 65536", &[("virtual_servers.0.ports", Some("[80, 65536]"))], "virtual_servers[0].ports[1]", "must be between 1 and 65535"),
    ("port twice", &[("virtual_servers.0.ports", Some("[80, 443, 80]"))], "virtual_servers[0].ports[2]", "port 80 is listed twice"),
    (
        "VIP:port:protocol twice",
        &[("virtual_servers.1.vip", Some("192.168.5.188")), ("virtual_servers.1.vrrp", Some("VI_1")), ("virtual_servers.1.protocol", Some("tcp")), ("virtual_servers.1.ports", Some("[443]"))],
        "virtual_servers[1].ports",
        "192.168.5.188:443/tcp is already served by virtual_servers[0] (web)",
    ),
    (
        "every-port service overlaps",
        &[("virtual_servers.1.vip", Some("192.168.5.188")), ("virtual_servers.1.vrrp", Some("VI_1")), ("virtual_servers.1.protocol", Some("tcp"))],
        "virtual_servers[1].ports",
        "overlaps virtual_servers[0] (web)",
    ),
    (
        "IPv6 VIP:port:protocol twice",
        &[("virtual_servers.1.vip", Some("'2001:db8::188'")), ("virtual_servers.1.vrrp", Some("VI_6")), ("virtual_servers.1.protocol", Some("tcp")), ("virtual_servers.1.ports", Some("[80]")), ("virtual_servers.1.real_servers.0.address", Some("'2001:db8::106'"))],
        "virtual_servers[2].ports",
        "[2001:db8::188]:80/tcp is already served by virtual_servers[1] (dns)",
    ),
    ("one VIP, two instances", &[("virtual_servers.1.vip", Some("192.168.5.188"))], "virtual_servers[1].vrrp", "every service of one VIP must name the same vrrp instance"),
    ("table not prime", &[("virtual_servers.0.table_size", Some("65536"))], "virtual_servers[0].table_size", "65536 is not prime (Maglev needs a prime table size; the next prime is 65537)"),
    ("table too small", &[("virtual_servers.0.table_size", Some("199"))], "virtual_servers[0].table_size", "at least 100 x the number of real servers (2 real servers: a prime >= 200, e.g. 211)"),
    ("table too large", &[("virtual_servers.0.table_size", Some("16777259"))], "virtual_servers[0].table_size", "must be a prime between 2 and 16777213"),
    ("table 1", &[("virtual_servers.0.table_size", Some("1"))], "virtual_servers[0].table_size", "must be a prime between 2"),
    ("unknown instance", &[("virtual_servers.0.vrrp", Some("VI_9"))], "virtual_servers[0].vrrp", "unknown VRRP instance \"VI_9\" (instances: VI_1, VI_6, VI_2)"),
    ("instance without vrrp section", &[("vrrp", None)], "virtual_servers[0].vrrp", "there is no vrrp section"),
    ("sorry server wrong family", &[("virtual_servers.0.sorry_server", Some("'2001:db8::99'"))], "virtual_servers[0].sorry_server", "2001:db8::99 is IPv6 but the VIP 192.168.5.188 is IPv4"),
    ("sorry server garbage", &[("virtual_servers.0.sorry_server", Some("backup-host"))], "virtual_servers[0].sorry_server", "not an IPv4 or IPv6 address"),
    ("real_servers missing", &[("virtual_servers.0.real_servers", None)], "virtual_servers[0].real_servers", "is required"),
    // real servers
    ("address missing", &[("virtual_servers.0.real_servers.1.address", None)], "virtual_servers[0].real_servers[1].address", "is required"),
    ("address garbage", &[("virtual_servers.0.real_servers.1.address", Some("web2"))], "virtual_servers[0].real_servers[1].address", "\"web2\" is not an IPv4 or IPv6 address"),
    ("address wrong family", &[("virtual_servers.0.real_servers.1.address", Some("'2001:db8::105'"))], "virtual_servers[0].real_servers[1].address", "is IPv6 but the VIP 192.168.5.188 is IPv4"),
    ("address twice", &[("virtual_servers.0.real_servers.1.address", Some("192.168.5.104"))], "virtual_servers[0].real_servers[1].address", "duplicate real server 192.168.5.104 (also real_servers[0])"),
    ("address is the VIP", &[("virtual_servers.0.real_servers.1.address", Some("192.168.5.188"))], "virtual_servers[0].real_servers[1].address", "must not be the VIP itself"),
    ("mac garbage", &[("virtual_servers.0.real_servers.0.mac", Some("'52:54:00:12:34'"))], "virtual_servers[0].real_servers[0].mac", "not a MAC address"),
    ("mac bad hex", &[("virtual_servers.0.real_servers.0.mac", Some("'52:54:00:12:34:zz'"))], "virtual_servers[0].real_servers[0].mac", "not a MAC address"),
    ("mac multicast", &[("virtual_servers.0.real_servers.0.mac", Some("'01:00:5e:00:00:12'"))], "virtual_servers[0].real_servers[0].mac", "not a unicast MAC address"),
    ("mac zero", &[("virtual_servers.0.real_servers.0.mac", Some("'00:00:00:00:00:00'"))], "virtual_servers[0].real_servers[0].mac", "not a unicast MAC address"),
    ("weight too big", &[("virtual_servers.0.real_servers.1.weight", Some("65536"))], "virtual_servers[0].real_servers[1].weight", "must be between 0 and 65535"),
    ("weight beyond i64", &[("virtual_servers.0.real_servers.1.weight", Some("18446744073709551615"))], "virtual_servers[0].real_servers[1].weight", "must be between 0 and 65535"),
    ("weight negative", &[("virtual_servers.0.real_servers.1.weight", Some("-1"))], "virtual_servers[0].real_servers[1].weight", "must be between 0 and 65535"),
    ("notify_down empty", &[("virtual_servers.0.real_servers.0.notify_down", Some("''"))], "virtual_servers[0].real_servers[0].notify_down", "must not be empty"),
    // checks
    ("check type missing", &[("virtual_servers.0.real_servers.1.check.type", None)], "virtual_servers[0].real_servers[1].check.type", "is required (tcp, http or exec)"),
    ("http key on tcp check", &[("virtual_servers.0.real_servers.1.check.path", Some("/x"))], "virtual_servers[0].real_servers[1].check.path", "only valid for http checks"),
    ("digest on exec check", &[("virtual_servers.1.real_servers.0.check.digest", Some("abc"))], "virtual_servers[1].real_servers[0].check.digest", "only valid for http checks"),
    ("command on http check", &[("virtual_servers.0.real_servers.0.check.command", Some("true"))], "virtual_servers[0].real_servers[0].check.command", "only valid for exec checks"),
    ("exec without command", &[("virtual_servers.1.real_servers.0.check.command", None)], "virtual_servers[1].real_servers[0].check.command", "is required"),
    ("exec empty command", &[("virtual_servers.1.real_servers.0.check.command", Some("''"))], "virtual_servers[1].real_servers[0].check.command", "must not be empty"),
    ("check port 0", &[("virtual_servers.0.real_servers.1.check.port", Some("0"))], "virtual_servers[0].real_servers[1].check.port", "must be between 1 and 65535"),
    ("tcp check on every-port service", &[("virtual_servers.1.real_servers.0.check", Some("{type: tcp}"))], "virtual_servers[1].real_servers[0].check.port", "is required when the service has no ports"),
    ("interval zero", &[("virtual_servers.0.real_servers.1.check.interval", Some("0ms"))], "virtual_servers[0].real_servers[1].check.interval", "must be greater than 0s"),
    ("timeout zero", &[("virtual_servers.0.real_servers.1.check.timeout", Some("0s"))], "virtual_servers[0].real_servers[1].check.timeout", "must be greater than 0s"),
    ("timeout exceeds interval", &[("virtual_servers.0.real_servers.1.check.timeout", Some("2.5s"))], "virtual_servers[0].real_servers[1].check.timeout", "2.5s must not exceed interval (2s)"),
    ("rise 0", &[("virtual_servers.0.real_servers.1.check.rise", Some("0"))], "virtual_servers[0].real_servers[1].check.rise", "must be between 1 and 1000"),
    ("fall 0", &[("virtual_servers.0.real_servers.1.check.fall", Some("0"))], "virtual_servers[0].real_servers[1].check.fall", "must be between 1 and 1000"),
    ("warmup garbage", &[("virtual_servers.0.real_servers.1.check.warmup", Some("1x"))], "virtual_servers[0].real_servers[1].check.warmup", "unknown unit"),
    ("status empty", &[("virtual_servers.0.real_servers.0.check.status", Some("[]"))], "virtual_servers[0].real_servers[0].check.status", "at least one status code"),
    ("status 99", &[("virtual_servers.0.real_servers.0.check.status", Some("[200, 99]"))], "virtual_servers[0].real_servers[0].check.status[1]", "between 100 and 599"),
    ("status 600", &[("virtual_servers.0.real_servers.0.check.status", Some("[600]"))], "virtual_servers[0].real_servers[0].check.status[0]", "between 100 and 599"),
    ("http path relative", &[("virtual_servers.0.real_servers.0.check.path", Some("health"))], "virtual_servers[0].real_servers[0].check.path", "must start with /"),
    ("http host with space", &[("virtual_servers.0.real_servers.0.check.host", Some("'a b'"))], "virtual_servers[0].real_servers[0].check.host", "not a valid Host header"),
    ("digest not md5", &[("virtual_servers.0.real_servers.0.check.digest", Some("abc"))], "virtual_servers[0].real_servers[0].check.digest", "32 hex digits"),
    ("body_contains empty", &[("virtual_servers.0.real_servers.0.check.body_contains", Some("''"))], "virtual_servers[0].real_servers[0].check.body_contains", "must not be empty"),
];

#[test]
fn every_mutation_is_reported_with_its_path_and_reason() {
    let env = env();
    let mut failures = Vec::new();
    for (what, edits, path, fragment) in MUTATIONS {
        let mut doc = baseline();
        for (p, v) in *edits {
            edit(&mut doc, p, *v);
        }
        let errors = invalid(&doc, &env);
        let hit = errors
            .iter()
            .any(|e| e.path == *path && e.message.contains(fragment));
        if !hit {
            failures.push(format!(
                "{what}: expected `{path}: ...{fragment}...`, got:\n    {}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        MUTATIONS.len(),
        failures.join("\n")
    );
}

/// Mutations that must stay valid: they guard the rules above against over-reach.
#[test]
fn near_misses_are_accepted() {
    let env = env();
    #[rustfmt::skip]
    let rows: &[(&str, Edits)] = &[
        ("same VIP, other protocol, every port", &[("virtual_servers.1.vip", Some("192.168.5.188")), ("virtual_servers.1.vrrp", Some("VI_1"))]),
        ("same VIP and protocol, other ports", &[("virtual_servers.1.vip", Some("192.168.5.188")), ("virtual_servers.1.vrrp", Some("VI_1")), ("virtual_servers.1.protocol", Some("tcp")), ("virtual_servers.1.ports", Some("[8080]"))]),
        ("same VRID, other family, same interface", &[]),
        ("timeout equal to interval", &[("virtual_servers.0.real_servers.1.check.timeout", Some("2s"))]),
        ("weight bounds", &[("virtual_servers.0.real_servers.0.weight", Some("65535")), ("virtual_servers.0.real_servers.1.weight", Some("0"))]),
        ("table exactly 100 x", &[("virtual_servers.0.real_servers", Some("[{address: 192.168.5.104}]")), ("virtual_servers.0.table_size", Some("101"))]),
        ("largest table", &[("virtual_servers.0.table_size", Some("16777213"))]),
        ("v3 advert bounds", &[("vrrp.0.advert_interval", Some("10ms")), ("vrrp.1.advert_interval", Some("40.95s"))]),
        ("v2 advert bounds", &[("vrrp.2.advert_interval", Some("255s"))]),
        ("auth_pass 8 bytes", &[("vrrp.2.auth_pass", Some("12345678"))]),
        ("exec check with explicit port on every-port service", &[("virtual_servers.1.real_servers.0.check.port", Some("53"))]),
        ("check null", &[("virtual_servers.0.real_servers.0.check", Some("null"))]),
        ("queues all", &[("workers.queues", Some("all"))]),
        ("empty services", &[("virtual_servers", Some("[]"))]),
        ("frames exactly 2 x batch", &[("workers.frames", Some("64"))]),
        ("sched inherit", &[("workers.sched", Some("inherit"))]),
        ("sched nice bounds", &[("workers.sched", Some("'nice:-20'"))]),
        ("sched fifo 99", &[("workers.sched", Some("'fifo:99'"))]),
        ("no vrrp section, no vrrp reference", &[("vrrp", None), ("virtual_servers.0.vrrp", None), ("virtual_servers.1.vrrp", None), ("virtual_servers.2.vrrp", None)]),
    ];
    for (what, edits) in rows {
        let mut doc = baseline();
        for (p, v) in *edits {
            edit(&mut doc, p, *v);
        }
        if let Err(e) = load_value(&doc, &env) {
            panic!("{what}: expected valid, got:\n{e}");
        }
    }
}

#[test]
fn restart_needed_names_data_plane_keys_only() {
    let running = Config::from_yaml(BASELINE, &env()).unwrap();
    assert!(running.restart_needed(&running).is_empty());
    let mut doc = baseline();
    edit(
        &mut doc,
        "virtual_servers.0.real_servers.1.weight",
        Some("7"),
    );
    edit(&mut doc, "flows.tcp_timeout", Some("1h"));
    edit(&mut doc, "vrrp.0.priority", Some("100"));
    let live = load_value(&doc, &env()).unwrap();
    assert!(running.restart_needed(&live).is_empty());
    edit(&mut doc, "interface", Some("eth1"));
    edit(&mut doc, "workers.queues", Some("all"));
    edit(&mut doc, "flows.capacity", Some("1024"));
    let restart = load_value(&doc, &env()).unwrap();
    assert_eq!(
        running.restart_needed(&restart),
        ["interface", "workers.queues", "flows.capacity"]
    );
}

#[test]
fn priority_255_is_accepted_for_the_address_owner() {
    let mut doc = baseline();
    edit(&mut doc, "vrrp.0.priority", Some("255"));
    // Not the owner: rejected (covered above). Owner: eth0 holds the VIP.
    let owner =
        StaticEnvironment::new(4).with_interface("eth0", &[ip("192.168.5.1"), ip("192.168.5.188")]);
    let c = load_value(&doc, &owner).unwrap();
    assert_eq!(c.vrrp[0].priority, 255);
    // The address must be on the instance's interface, not elsewhere.
    let elsewhere = StaticEnvironment::new(4).with_interface("eth1", &[ip("192.168.5.188")]);
    let errors = invalid(&doc, &elsewhere);
    assert!(
        errors.iter().any(|e| e.path == "vrrp[0].priority"),
        "{errors:?}"
    );
}

#[test]
fn all_errors_are_collected_in_file_order_and_displayed_one_per_line() {
    let mut doc = baseline();
    edit(&mut doc, "workers.batch_size", Some("0"));
    edit(&mut doc, "vrrp.0.vrid", Some("0"));
    edit(
        &mut doc,
        "virtual_servers.0.real_servers.1.weight",
        Some("70000"),
    );
    edit(&mut doc, "virtual_servers.2.ports", Some("[0]"));
    let err = load_value(&doc, &env()).unwrap_err();
    let ConfigError::Invalid(errors) = &err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "workers.batch_size",
            "vrrp[0].vrid",
            "virtual_servers[0].real_servers[1].weight",
            "virtual_servers[2].ports[0]"
        ]
    );
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines[2],
        "virtual_servers[0].real_servers[1].weight: must be between 0 and 65535"
    );
}

fn syntax(text: &str) -> (usize, usize, String) {
    match Config::from_yaml(text, &env()) {
        Err(ConfigError::Syntax {
            line,
            column,
            message,
        }) => (line, column, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    let (line, column, message) =
        syntax("interface: eth0\nworkers: { batch_size: 64\nvirtual_servers: []\n");
    assert!(line >= 2 && column >= 1, "{line}:{column} {message}");

    let (line, column, _) =
        syntax("interface: eth0\nvirtual_servers:\n  - name: web\n   vip: 1.2.3.4\n");
    assert_eq!(line, 4, "bad indentation is reported where it is");
    assert!(column >= 1);

    let (line, _, message) = syntax("interface: eth0\n\tvirtual_servers: []\n");
    assert_eq!(line, 2, "{message}");

    let err = Config::from_yaml("interface: [eth0\n", &env()).unwrap_err();
    assert!(err.to_string().starts_with("line "), "{err}");
}

#[test]
fn unknown_keys_are_named_with_their_location() {
    let (line, column, message) = syntax("interfce: eth0\nvirtual_servers: []\n");
    assert_eq!((line, column), (1, 1));
    assert!(message.contains("unknown field `interfce`"), "{message}");

    let text = include_str!("fixtures/config/unknown_key.yaml");
    let (line, column, message) = syntax(text);
    assert_eq!((line, column), (8, 9), "{message}");
    assert!(
        message.starts_with("virtual_servers[0].real_servers[0].wieght: unknown field `wieght`"),
        "{message}"
    );
    assert!(
        message.contains("`weight`"),
        "lists the keys that exist: {message}"
    );

    let (line, _, message) = syntax("interface: eth0\nvirtual_servers:\n  - name: web\n    vip: 1.2.3.4\n    ports: [80]\n    real_servers:\n      - address: 1.2.3.5\n        check: { type: http, paht: / }\n");
    assert_eq!(line, 8);
    assert!(
        message.starts_with("virtual_servers[0].real_servers[0].check.paht: unknown field"),
        "{message}"
    );
}

#[test]
fn wrong_types_and_unknown_values_name_the_path() {
    let base = "interface: eth0\nvirtual_servers:\n  - name: web\n    vip: 1.2.3.4\n    ports: [80]\n    real_servers:\n      - address: 1.2.3.5\n";
    let cases = [
        (
            "weight: heavy",
            "virtual_servers[0].real_servers[0].weight: invalid type",
        ),
        (
            "check: { type: icmp }",
            "virtual_servers[0].real_servers[0].check.type: unknown variant `icmp`",
        ),
        (
            "mac: [1, 2]",
            "virtual_servers[0].real_servers[0].mac: invalid type",
        ),
    ];
    for (line_text, expected) in cases {
        let text = format!("{base}        {line_text}\n");
        let (line, column, message) = syntax(&text);
        assert_eq!(line, 8, "{message}");
        assert!(column > 1);
        assert!(message.starts_with(expected), "{message}");
    }
    let (line, _, message) = syntax("interface: eth0\nxdp_mode: skb\nvirtual_servers: []\n");
    assert_eq!(line, 2);
    assert!(
        message.starts_with("xdp_mode: unknown variant `skb`, expected `native` or `generic`"),
        "{message}"
    );
    let (_, _, message) = syntax("interface: eth0\nvirtual_servers:\n  - {name: a, vip: 1.2.3.4, ports: [80], scheduler: wrr, real_servers: []}\n");
    assert!(
        message.starts_with("virtual_servers[0].scheduler: unknown variant `wrr`"),
        "{message}"
    );
    let (_, _, message) =
        syntax("interface: eth0\nvirtual_servers: []\nworkers: { queues: {a: 1} }\n");
    assert!(
        message.starts_with("workers.queues: invalid type: map, expected \"all\" or a list"),
        "{message}"
    );
    let (_, _, message) =
        syntax("interface: eth0\nvirtual_servers: []\nworkers: { batch_size: 1.5 }\n");
    assert!(
        message.starts_with(
            "workers.batch_size: invalid type: floating point `1.5`, expected an integer"
        ),
        "{message}"
    );
    let (_, _, message) =
        syntax("interface: eth0\nvirtual_servers: []\nflows: { tcp_timeout: [1s] }\n");
    assert!(
        message.starts_with("flows.tcp_timeout: invalid type: sequence, expected a duration"),
        "{message}"
    );
}

#[test]
fn empty_and_odd_documents_fail_cleanly() {
    for text in ["", "# only a comment\n", "\n\n"] {
        let err = Config::from_yaml(text, &env()).unwrap_err();
        let ConfigError::Invalid(errors) = err else {
            panic!("{text:?}")
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["interface", "virtual_servers"]);
    }
    for text in [
        "[]",
        "42",
        "interface: eth0\n---\ninterface: eth1\n",
        "~",
        "!!binary aGVsbG8=",
    ] {
        assert!(
            matches!(
                Config::from_yaml(text, &env()),
                Err(ConfigError::Syntax { .. })
            ),
            "{text:?}"
        );
    }
}

#[test]
fn hostile_yaml_is_refused_without_overflow_or_blowup() {
    // Deep nesting: serde_yaml's recursion limit, not a stack overflow.
    // libyaml is quadratic in flow depth; such text is refused before it parses.
    let deep = format!("interface: {}\n", "[".repeat(1_000_000));
    let (line, column, message) = syntax(&deep);
    assert_eq!((line, column), (1, 12 + 1024), "{message}");
    assert!(message.contains("nested deeper than 1024"), "{message}");
    let (line, _, _) = syntax(&format!("interface: {}\n", "[".repeat(1000)));
    assert_eq!(line, 1);
    // Alias expansion ("billion laughs"): refused, not expanded.
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = (b'a' + i - 1) as char;
        let cur = (b'a' + i) as char;
        laughs.push_str(&format!(
            "{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    assert!(matches!(
        Config::from_yaml(&laughs, &env()),
        Err(ConfigError::Syntax { .. })
    ));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = Config::load(Path::new("/nonexistent/xlb.yaml"), &env()).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/xlb.yaml"), "{err}");
}

#[test]
fn duration_parser() {
    let ok: &[(&str, Duration)] = &[
        ("1s", Duration::from_secs(1)),
        ("100ms", Duration::from_millis(100)),
        ("1m", Duration::from_secs(60)),
        ("2h", Duration::from_secs(7200)),
        ("1.5s", Duration::from_millis(1500)),
        ("0.1s", Duration::from_millis(100)),
        ("1.1s", Duration::from_nanos(1_100_000_000)),
        ("0s", Duration::ZERO),
        ("0.5ms", Duration::from_micros(500)),
        ("250us", Duration::from_micros(250)),
        ("7ns", Duration::from_nanos(7)),
        ("40.95s", Duration::from_millis(40_950)),
        ("900s", Duration::from_secs(900)),
        ("007s", Duration::from_secs(7)),
    ];
    for (text, want) in ok {
        assert_eq!(parse_duration(text).as_ref(), Ok(want), "{text}");
    }
    let bad: &[(&str, &str)] = &[
        ("1", "missing unit"),
        ("100", "missing unit"),
        ("-1s", "must not be negative"),
        ("+1s", "invalid duration"),
        ("", "empty duration"),
        ("s", "expected a number"),
        ("1.s", "expected a number"),
        (".5s", "expected a number"),
        ("1.2.3s", "expected a number"),
        ("1 s", "invalid duration"),
        (" 1s", "invalid duration"),
        ("1sec", "unknown unit \"sec\""),
        ("1S", "unknown unit \"S\""),
        ("1d", "unknown unit"),
        ("1s5", "unknown unit"),
        ("abc", "invalid duration"),
        ("0.5ns", "finer than one nanosecond"),
        ("9999999999999999999h", "too large"),
        ("1.0000000000000000001s", "too large"),
        ("1e3s", "unknown unit"),
        ("١s", "invalid duration"),
    ];
    for (text, fragment) in bad {
        match parse_duration(text) {
            Ok(d) => panic!("{text:?} parsed as {d:?}"),
            Err(msg) => assert!(msg.contains(fragment), "{text:?}: {msg}"),
        }
    }
    assert_eq!(format_duration(Duration::from_millis(2500)), "2.5s");
    assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
}

#[test]
fn is_prime_is_right_on_small_and_table_sized_numbers() {
    let primes: Vec<u64> = (0..60).filter(|&n| is_prime(n)).collect();
    assert_eq!(
        primes,
        [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59]
    );
    assert!(is_prime(65537) && is_prime(16_777_213) && is_prime(251));
    assert!(!is_prime(65535) && !is_prime(16_777_215) && !is_prime(4_294_967_297));
}

#[test]
fn example_file_parses_as_the_seed_blog_setup() {
    let env = StaticEnvironment::new(2).with_interface("eth0", &[ip("192.168.5.1")]);
    let c = Config::from_yaml(EXAMPLE, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.workers.cores, vec![1]);
    assert_eq!(c.vrrp.len(), 1);
    let vi = &c.vrrp[0];
    assert_eq!((vi.name.as_str(), vi.vrid, vi.priority), ("VI_1", 51, 150));
    assert_eq!(c.virtual_servers.len(), 1);
    let web = &c.virtual_servers[0];
    assert_eq!(web.vip, ip("192.168.5.188"));
    assert_eq!(web.ports, vec![80]);
    assert_eq!(web.protocol, Protocol::Tcp);
    assert_eq!(web.vrrp.as_deref(), Some("VI_1"));
    let addrs: Vec<IpAddr> = web.real_servers.iter().map(|r| r.address).collect();
    assert_eq!(addrs, vec![ip("192.168.5.104"), ip("192.168.5.105")]);
    for rs in &web.real_servers {
        let check = rs.check.as_ref().expect("http check");
        assert!(matches!(check.kind, CheckKind::Http { .. }));
        assert_eq!((check.port, check.rise, check.fall), (80, 2, 3));
    }
}

/// Every key of the contract is named in a comment of the example (its meaning and
/// default), so the file documents the whole contract; optional check keys are described
/// there without being set.
#[test]
fn example_file_documents_every_key() {
    let keys = [
        "interface",
        "xdp_mode",
        "workers",
        "queues",
        "cores",
        "batch_size",
        "frames",
        "flows",
        "capacity",
        "tcp_timeout",
        "tcp_fin_timeout",
        "udp_timeout",
        "metrics",
        "listen",
        "control_socket",
        "vrrp",
        "name",
        "vrid",
        "priority",
        "version",
        "advert_interval",
        "preempt",
        "preempt_delay",
        "unicast_peers",
        "unicast_src_ip",
        "auth_pass",
        "v3_checksum_as_v2",
        "garp_master_repeat",
        "garp_master_refresh_delay",
        "track_interfaces",
        "notify",
        "virtual_servers",
        "vip",
        "ports",
        "protocol",
        "scheduler",
        "table_size",
        "sorry_server",
        "on_down",
        "inhibit_on_failure",
        "real_servers",
        "address",
        "mac",
        "weight",
        "notify_up",
        "notify_down",
        "check",
        "type",
        "port",
        "path",
        "host",
        "status",
        "body_contains",
        "digest",
        "command",
        "interval",
        "timeout",
        "rise",
        "fall",
        "warmup",
    ];
    let comments: Vec<&str> = EXAMPLE
        .lines()
        .filter_map(|l| l.split_once('#').map(|(_, c)| c))
        .collect();
    let word = |text: &str, key: &str| {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == key)
    };
    for key in keys {
        let in_comment = comments.iter().any(|c| word(c, key))
            // A key documented by the comment just above its own line.
            || EXAMPLE.lines().collect::<Vec<_>>().windows(2).any(|w| {
                w[0].trim_start().starts_with('#') && w[1].trim_start().trim_start_matches("- ").starts_with(&format!("{key}:"))
            });
        assert!(in_comment, "config.example.yaml has no comment for `{key}`");
    }
    assert!(
        EXAMPLE.contains("priority: 100"),
        "says what the backup uses"
    );
}
