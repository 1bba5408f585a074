//! Fuzz target: arbitrary UTF-8 text into `Config::from_yaml`.
//!
//! Loading must never panic, and whatever it accepts must satisfy the contract's
//! invariants (checked below), so the fuzzer also hunts for validation holes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xlb::config::{is_prime, Config, ConfigError, StaticEnvironment, MAX_TABLE_SIZE};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = StaticEnvironment::new(4).with_interface("eth0", &["192.168.5.188".parse().unwrap()]);
    match Config::from_yaml(text, &env) {
        Ok(c) => check_invariants(&c),
        Err(ConfigError::Invalid(errors)) => {
            assert!(!errors.is_empty());
            let _ = ConfigError::Invalid(errors).to_string();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

fn check_invariants(c: &Config) {
    assert!(!c.interface.is_empty());
    assert!((1..=1024).contains(&c.workers.batch_size));
    assert!(c.workers.frames.is_power_of_two());
    assert!(c.workers.frames as usize >= 2 * c.workers.batch_size);
    assert!(!c.workers.cores.is_empty() && c.workers.cores.iter().all(|&k| k < 4));
    for vs in &c.virtual_servers {
        assert!(!vs.name.is_empty());
        assert!(is_prime(vs.table_size as u64) && vs.table_size <= MAX_TABLE_SIZE);
        assert!(vs.table_size >= 100 * vs.real_servers.len());
        assert!(vs.ports.iter().all(|&p| p != 0));
        for rs in &vs.real_servers {
            assert_eq!(rs.address.is_ipv4(), vs.vip.is_ipv4());
            assert!(rs.weight <= 65535);
            if let Some(chk) = &rs.check {
                assert!(chk.timeout <= chk.interval && !chk.timeout.is_zero());
                assert!(chk.rise >= 1 && chk.fall >= 1);
            }
        }
        if let Some(name) = &vs.vrrp {
            assert!(c.vrrp.iter().any(|i| &i.name == name));
        }
    }
    for inst in &c.vrrp {
        assert!(inst.vrid >= 1 && inst.priority >= 1);
        assert!(inst.version == 2 || inst.version == 3);
        if inst.version == 2 {
            assert!(inst
                .auth_pass
                .as_ref()
                .is_none_or(|p| !p.is_empty() && p.len() <= 8));
        } else {
            assert!(inst.auth_pass.is_none());
        }
    }
}
