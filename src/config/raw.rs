//! Stage one of config loading: the YAML document as serde reads it.
//!
//! Every struct denies unknown fields, so a misspelt key is an error with its line, column
//! and path rather than a silently ignored setting. Values whose range or syntax needs a
//! message of its own (numbers with bounds, addresses, durations, MACs) are kept loose here
//! (`i64`, `String`, [`RawDuration`]) and checked by `validate`, which can then report every
//! problem at once with its YAML path. Required keys are `Option`s for the same reason.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub interface: Option<String>,
    pub xdp_mode: Option<RawXdpMode>,
    pub workers: Option<RawWorkers>,
    pub flows: Option<RawFlows>,
    pub metrics: Option<RawMetrics>,
    pub control_socket: Option<String>,
    pub vrrp: Option<Vec<RawVrrp>>,
    pub virtual_servers: Option<Vec<RawVirtualServer>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawXdpMode {
    Native,
    Generic,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkers {
    pub queues: Option<RawQueues>,
    pub cores: Option<Vec<RawInt>>,
    pub batch_size: Option<RawInt>,
    pub frames: Option<RawInt>,
    pub sched: Option<String>,
}

/// `queues: all` or `queues: [0, 1]`; any other word is kept for `validate` to name.
#[derive(Debug)]
pub enum RawQueues {
    Word(String),
    List(Vec<RawInt>),
}

impl<'de> Deserialize<'de> for RawQueues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawQueues;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"all\" or a list of queue ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawQueues, E> {
                Ok(RawQueues::Word(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawQueues, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<RawInt>()? {
                    ids.push(id);
                }
                Ok(RawQueues::List(ids))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlows {
    pub capacity: Option<RawInt>,
    pub tcp_timeout: Option<RawDuration>,
    pub tcp_fin_timeout: Option<RawDuration>,
    pub udp_timeout: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVrrp {
    pub name: Option<String>,
    pub interface: Option<String>,
    pub vrid: Option<RawInt>,
    pub priority: Option<RawInt>,
    pub version: Option<RawInt>,
    pub advert_interval: Option<RawDuration>,
    pub preempt: Option<bool>,
    pub preempt_delay: Option<RawDuration>,
    pub unicast_peers: Option<Vec<String>>,
    pub unicast_src_ip: Option<String>,
    pub auth_pass: Option<String>,
    pub v3_checksum_as_v2: Option<bool>,
    pub garp_master_repeat: Option<RawInt>,
    pub garp_master_refresh_delay: Option<RawDuration>,
    pub track_interfaces: Option<Vec<String>>,
    pub notify: Option<RawNotify>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawProtocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawScheduler {
    Maglev,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawOnDown {
    Reschedule,
    Drop,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVirtualServer {
    pub name: Option<String>,
    pub vip: Option<String>,
    pub ports: Option<Vec<RawInt>>,
    pub protocol: Option<RawProtocol>,
    pub scheduler: Option<RawScheduler>,
    pub table_size: Option<RawInt>,
    pub vrrp: Option<String>,
    pub sorry_server: Option<String>,
    pub on_down: Option<RawOnDown>,
    pub inhibit_on_failure: Option<bool>,
    pub real_servers: Option<Vec<RawRealServer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRealServer {
    pub address: Option<String>,
    pub mac: Option<String>,
    pub weight: Option<RawInt>,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    pub check: Option<RawCheck>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawCheckType {
    Tcp,
    Http,
    Exec,
}

/// One flat struct for every check type, so that serde keeps exact locations (an
/// internally tagged enum would buffer the map and lose them); `validate` then says which
/// keys belong to which `type`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    #[serde(rename = "type")]
    pub kind: Option<RawCheckType>,
    pub port: Option<RawInt>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub status: Option<Vec<RawInt>>,
    pub body_contains: Option<String>,
    pub digest: Option<String>,
    pub command: Option<String>,
    pub interval: Option<RawDuration>,
    pub timeout: Option<RawDuration>,
    pub rise: Option<RawInt>,
    pub fall: Option<RawInt>,
    pub warmup: Option<RawDuration>,
}

/// A duration as written. Numbers are accepted here and turned into text so that
/// `validate` can say "missing unit" instead of serde's "invalid type".
#[derive(Debug, Clone)]
pub struct RawDuration(pub String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1s\" or \"100ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer as written. Range checks happen in `validate` (with the YAML path); values
/// beyond `i64` saturate so that they fail those checks with the same message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawInt(pub i64);

impl<'de> Deserialize<'de> for RawInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawInt, E> {
                Ok(RawInt(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawInt, E> {
                Ok(RawInt(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawInt, E> {
                Ok(RawInt(
                    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
                ))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawInt, E> {
                Ok(RawInt(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}
