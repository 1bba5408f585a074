//! The VRRP state machine of RFC 3768 (v2) and RFC 5798 / RFC 9568 (v3), as keepalived
//! runs it: pure, no I/O and no clock reads.
//!
//! Every input carries the current time; every output is a list of [`Action`]s the caller
//! carries out in order (send an advert, change state, arm or cancel the one timer). Each
//! state change comes with a human-readable reason for the logs. The machine holds a single
//! deadline: the Adver_Timer while master, the Master_Down_Timer while backup, none in
//! Initialize and Fault. A timer input that arrives before the deadline is ignored, so the
//! caller may wake up early without harm.
//!
//! Timing (microsecond integer arithmetic, as keepalived):
//! - Skew_Time = (256 - Priority) * Master_Adver_Interval / 256 for v3, and
//!   (256 - Priority) / 256 s for v2 (RFC 3768).
//! - Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
//! - A v3 backup learns Master_Adver_Interval from the adverts it accepts.
//!
//! Beyond the RFC, as keepalived does: a master that hears a lower-priority advert
//! answers at once with its own advert (forcing the other router back to backup), a master
//! leaving for Fault sends a priority-0 advert, and `preempt_delay` holds a preempting
//! backup back for that long after it first hears the lower-priority master.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The protocol states. Initialize is both "not started" and "shut down".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running (before start, after shutdown).
    Initialize,
    /// Listening to a master.
    Backup,
    /// Owning the virtual addresses and sending adverts.
    Master,
    /// A tracked interface is down: neither master nor candidate.
    Fault,
}

impl State {
    /// keepalived's name for the state (used in notify arguments and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parameters of one virtual router that the state machine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineConfig {
    /// 2 or 3.
    pub version: u8,
    /// Our priority, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Our Advertisement_Interval.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup preempts a lower-priority master.
    pub preempt: bool,
    /// keepalived's `preempt_delay` (zero: none).
    pub preempt_delay: Duration,
    /// Our primary address (the source of our adverts), for equal-priority elections.
    pub primary_ip: IpAddr,
}

/// A received advert, already validated by the I/O layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advert {
    /// The sender's primary address.
    pub src: IpAddr,
    /// The sender's priority (0 = it is shutting down).
    pub priority: u8,
    /// The sender's advert interval in centiseconds (v2: seconds * 100).
    pub max_adver_int_cs: u16,
}

/// What the caller has to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send one advert with this priority (our own, or 0 when leaving master).
    SendAdvert {
        /// The priority field of the advert.
        priority: u8,
    },
    /// The state changed.
    Transition {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why, for the logs (e.g. "higher priority 150 from 10.99.0.2").
        reason: String,
    },
    /// (Re-)arm the one timer to fire at this time.
    ArmTimer(Instant),
    /// No timer is running any more.
    CancelTimer,
}

/// Why a backup's Master_Down_Timer is running, so its expiry can be explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DownCause {
    /// No advert heard since start or since the last accepted one.
    Silence,
    /// The master sent priority 0.
    MasterStopped(IpAddr),
    /// We are ignoring a lower-priority master's adverts in order to preempt it.
    Preempting(IpAddr, u8),
}

/// The state machine of one virtual router.
#[derive(Clone, Debug)]
pub struct Machine {
    cfg: MachineConfig,
    state: State,
    master_adver_int: Duration,
    deadline: Option<Instant>,
    preempt_at: Option<Instant>,
    down_cause: DownCause,
    down_links: BTreeSet<String>,
    started: bool,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl Machine {
    /// A machine in Initialize.
    pub fn new(cfg: MachineConfig) -> Self {
        let master_adver_int = cfg.advert_interval;
        Self {
            cfg,
            state: State::Initialize,
            master_adver_int,
            deadline: None,
            preempt_at: None,
            down_cause: DownCause::Silence,
            down_links: BTreeSet::new(),
            started: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &MachineConfig {
        &self.cfg
    }

    /// When the timer fires next, if one is running.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Master_Adver_Interval (learned from the master in v3).
    pub fn master_adver_int(&self) -> Duration {
        self.master_adver_int
    }

    /// Skew_Time for our priority and the current Master_Adver_Interval.
    pub fn skew_time(&self) -> Duration {
        let factor = 256 - u64::from(self.cfg.priority);
        let base = if self.cfg.version == 3 {
            micros(self.master_adver_int)
        } else {
            1_000_000
        };
        Duration::from_micros(factor * base / 256)
    }

    /// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_int * 3 + self.skew_time()
    }

    /// Starts the router (Initialize -> Backup, Master for an owner, Fault if a tracked
    /// interface is down). Does nothing unless in Initialize.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        if self.state != State::Initialize {
            return Vec::new();
        }
        self.started = true;
        let mut out = Vec::new();
        if let Some(link) = self.down_links.iter().next().cloned() {
            self.enter_fault(now, format!("tracked interface {link} down"), &mut out);
        } else {
            self.enter_startup(now, "startup", &mut out);
        }
        out
    }

    /// The startup event of the RFC (also used when leaving Fault).
    fn enter_startup(&mut self, now: Instant, why: &str, out: &mut Vec<Action>) {
        self.master_adver_int = self.cfg.advert_interval;
        self.preempt_at = None;
        if self.cfg.priority == 255 {
            self.become_master(now, format!("{why}: address owner (priority 255)"), out);
        } else {
            self.become_backup(now, why.to_string(), out);
        }
    }

    fn transition(&mut self, to: State, reason: String, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        out.push(Action::Transition { from, to, reason });
    }

    fn arm(&mut self, at: Instant, out: &mut Vec<Action>) {
        self.deadline = Some(at);
        out.push(Action::ArmTimer(at));
    }

    fn cancel(&mut self, out: &mut Vec<Action>) {
        if self.deadline.take().is_some() {
            out.push(Action::CancelTimer);
        }
    }

    fn become_master(&mut self, now: Instant, reason: String, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.cfg.priority,
        });
        self.transition(State::Master, reason, out);
        self.arm(now + self.cfg.advert_interval, out);
    }

    fn become_backup(&mut self, now: Instant, reason: String, out: &mut Vec<Action>) {
        self.transition(State::Backup, reason, out);
        self.down_cause = DownCause::Silence;
        self.arm(now + self.master_down_interval(), out);
    }

    fn enter_fault(&mut self, _now: Instant, reason: String, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::SendAdvert { priority: 0 });
        }
        self.transition(State::Fault, reason, out);
        self.cancel(out);
    }

    fn learn_interval(&mut self, adv: &Advert) {
        if self.cfg.version == 3 && adv.max_adver_int_cs > 0 {
            self.master_adver_int = Duration::from_millis(u64::from(adv.max_adver_int_cs) * 10);
        }
    }

    /// A validated advert of our VRID arrived.
    pub fn advert(&mut self, now: Instant, adv: Advert) -> Vec<Action> {
        let mut out = Vec::new();
        if adv.src == self.cfg.primary_ip {
            return out; // our own advert looped back
        }
        let ours = self.cfg.priority;
        match self.state {
            State::Initialize | State::Fault => {}
            State::Backup => {
                if adv.priority == 0 {
                    self.down_cause = DownCause::MasterStopped(adv.src);
                    let at = now + self.skew_time();
                    self.arm(at, &mut out);
                    return out;
                }
                let delaying =
                    !self.cfg.preempt_delay.is_zero() && self.preempt_at.is_none_or(|t| now < t);
                if !self.cfg.preempt || adv.priority >= ours || delaying {
                    if !self.cfg.preempt_delay.is_zero() {
                        if adv.priority >= ours {
                            self.preempt_at = None;
                        } else if self.preempt_at.is_none() {
                            self.preempt_at = Some(now + self.cfg.preempt_delay);
                        }
                    }
                    self.learn_interval(&adv);
                    self.down_cause = DownCause::Silence;
                    let at = now + self.master_down_interval();
                    self.arm(at, &mut out);
                } else {
                    // Preempt: ignore the lower-priority master and let the timer run out.
                    self.down_cause = DownCause::Preempting(adv.src, adv.priority);
                }
            }
            State::Master => {
                if adv.priority == 0 {
                    out.push(Action::SendAdvert { priority: ours });
                    self.arm(now + self.cfg.advert_interval, &mut out);
                } else if adv.priority > ours
                    || (adv.priority == ours && adv.src > self.cfg.primary_ip)
                {
                    let reason = if adv.priority > ours {
                        format!("higher priority {} from {}", adv.priority, adv.src)
                    } else {
                        format!(
                            "equal priority {} from higher address {}",
                            adv.priority, adv.src
                        )
                    };
                    self.learn_interval(&adv);
                    self.preempt_at = None;
                    self.become_backup(now, reason, &mut out);
                } else {
                    // keepalived: assert ourselves at once so the other router backs off.
                    out.push(Action::SendAdvert { priority: ours });
                }
            }
        }
        out
    }

    /// The timer may have fired (ignored before the deadline).
    pub fn timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.deadline {
            Some(at) if now >= at => {}
            _ => return out,
        }
        match self.state {
            State::Backup => {
                let reason = match self.down_cause {
                    DownCause::Silence => "master down interval expired".to_string(),
                    DownCause::MasterStopped(src) => {
                        format!("master {src} sent priority 0, skew time expired")
                    }
                    DownCause::Preempting(src, p) => {
                        format!("preempting lower priority {p} from {src}")
                    }
                };
                self.become_master(now, reason, &mut out);
            }
            State::Master => {
                out.push(Action::SendAdvert {
                    priority: self.cfg.priority,
                });
                self.arm(now + self.cfg.advert_interval, &mut out);
            }
            State::Initialize | State::Fault => {
                self.deadline = None;
            }
        }
        out
    }

    /// Stops the router: a master sends priority 0. Ends in Initialize; `start` may follow.
    pub fn shutdown(&mut self, _now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.started = false;
        if self.state == State::Initialize {
            return out;
        }
        if self.state == State::Master {
            out.push(Action::SendAdvert { priority: 0 });
        }
        self.transition(State::Initialize, "shutdown".to_string(), &mut out);
        self.cancel(&mut out);
        out
    }

    /// A tracked interface went up or down. Any interface down means Fault; all up again
    /// restarts the router as at startup.
    pub fn track(&mut self, now: Instant, ifname: &str, up: bool) -> Vec<Action> {
        let mut out = Vec::new();
        let changed = if up {
            self.down_links.remove(ifname)
        } else {
            self.down_links.insert(ifname.to_string())
        };
        if !changed || !self.started {
            return out;
        }
        match (self.state, up) {
            (State::Backup | State::Master, false) => {
                self.enter_fault(now, format!("tracked interface {ifname} down"), &mut out);
            }
            (State::Fault, true) if self.down_links.is_empty() => {
                self.enter_startup(now, &format!("tracked interface {ifname} up"), &mut out);
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! Table-driven scenarios: each step feeds one input at an exact offset from t0 and
    //! lists the exact actions expected (timer deadlines as microseconds from t0).
    use super::*;

    #[derive(Clone, Copy, Debug)]
    enum In {
        Start,
        /// src, priority, max_adver_int_cs
        Adv(&'static str, u8, u16),
        Timer,
        Shutdown,
        Link(&'static str, bool),
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Out {
        Send(u8),
        To(State, String),
        Arm(u64),
        Cancel,
    }

    fn to(s: State, why: &str) -> Out {
        Out::To(s, why.to_string())
    }

    struct Scenario {
        what: &'static str,
        cfg: MachineConfig,
        steps: Vec<(u64, In, Vec<Out>, State)>,
    }

    fn cfg(version: u8, priority: u8, interval_ms: u64, ip: &str) -> MachineConfig {
        MachineConfig {
            version,
            priority,
            advert_interval: Duration::from_millis(interval_ms),
            preempt: true,
            preempt_delay: Duration::ZERO,
            primary_ip: ip.parse().unwrap(),
        }
    }

    fn run(s: &Scenario) {
        let t0 = Instant::now();
        let mut m = Machine::new(s.cfg.clone());
        for (i, (at_us, input, expect, state)) in s.steps.iter().enumerate() {
            let now = t0 + Duration::from_micros(*at_us);
            let actions = match *input {
                In::Start => m.start(now),
                In::Adv(src, priority, cs) => m.advert(
                    now,
                    Advert {
                        src: src.parse().unwrap(),
                        priority,
                        max_adver_int_cs: cs,
                    },
                ),
                In::Timer => m.timer(now),
                In::Shutdown => m.shutdown(now),
                In::Link(name, up) => m.track(now, name, up),
            };
            let got: Vec<Out> = actions
                .into_iter()
                .map(|a| match a {
                    Action::SendAdvert { priority } => Out::Send(priority),
                    Action::Transition { from, to, reason } => {
                        assert_ne!(from, to, "{}: step {i}: self transition", s.what);
                        Out::To(to, reason)
                    }
                    Action::ArmTimer(at) => Out::Arm((at - t0).as_micros() as u64),
                    Action::CancelTimer => Out::Cancel,
                })
                .collect();
            assert_eq!(
                &got, expect,
                "{}: step {i} ({input:?} at {at_us} us)",
                s.what
            );
            assert_eq!(m.state(), *state, "{}: step {i} state", s.what);
            if let Some(Out::Arm(us)) = got.iter().rev().find(|o| matches!(o, Out::Arm(_))) {
                assert_eq!(m.deadline(), Some(t0 + Duration::from_micros(*us)));
            }
        }
    }

    use State::{Backup, Fault, Initialize, Master};
    const A: &str = "10.99.0.2"; // priority 150 peer
    const C: &str = "10.99.0.4"; // higher address peer

    // v3, 100 ms, priority 100: Skew = 156 * 100000 / 256 = 60937 us; Down = 360937 us.
    // v3, 100 ms, priority 150: Skew = 106 * 100000 / 256 = 41406 us; Down = 341406 us.
    fn scenarios() -> Vec<Scenario> {
        let b100 = cfg(3, 100, 100, "10.99.0.3");
        let b150 = cfg(3, 150, 100, "10.99.0.2");
        let owner = cfg(3, 255, 100, "10.99.0.3");
        let nopreempt = MachineConfig {
            preempt: false,
            ..b150.clone()
        };
        let delayed = MachineConfig {
            preempt_delay: Duration::from_millis(250),
            ..b150.clone()
        };
        // The backup-100 router becoming master by silence, reused as a prefix.
        let to_master = || {
            vec![
                (
                    0,
                    In::Start,
                    vec![to(Backup, "startup"), Out::Arm(360_937)],
                    Backup,
                ),
                (
                    360_937,
                    In::Timer,
                    vec![
                        Out::Send(100),
                        to(Master, "master down interval expired"),
                        Out::Arm(460_937),
                    ],
                    Master,
                ),
            ]
        };
        let with = |mut pre: Vec<(u64, In, Vec<Out>, State)>,
                    rest: Vec<(u64, In, Vec<Out>, State)>| {
            pre.extend(rest);
            pre
        };
        vec![
            Scenario {
                what:
                    "backup becomes master after Master_Down_Interval, then adverts every interval",
                cfg: b100.clone(),
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(360_937)],
                        Backup,
                    ),
                    (360_936, In::Timer, vec![], Backup),
                    (
                        360_937,
                        In::Timer,
                        vec![
                            Out::Send(100),
                            to(Master, "master down interval expired"),
                            Out::Arm(460_937),
                        ],
                        Master,
                    ),
                    (
                        460_937,
                        In::Timer,
                        vec![Out::Send(100), Out::Arm(560_937)],
                        Master,
                    ),
                    (500_000, In::Start, vec![], Master),
                ],
            },
            Scenario {
                what: "address owner goes master at once",
                cfg: owner,
                steps: vec![(
                    0,
                    In::Start,
                    vec![
                        Out::Send(255),
                        to(Master, "startup: address owner (priority 255)"),
                        Out::Arm(100_000),
                    ],
                    Master,
                )],
            },
            Scenario {
                what: "backup follows a higher-priority master and learns its interval (v3)",
                cfg: b100.clone(),
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(360_937)],
                        Backup,
                    ),
                    (50_000, In::Adv(A, 150, 10), vec![Out::Arm(410_937)], Backup),
                    // 50 cs: Skew = 156 * 500000 / 256 = 304687; Down = 1804687.
                    (
                        100_000,
                        In::Adv(A, 150, 50),
                        vec![Out::Arm(1_904_687)],
                        Backup,
                    ),
                    (1_904_686, In::Timer, vec![], Backup),
                ],
            },
            Scenario {
                what: "priority 0 from the master: backup takes over after Skew_Time",
                cfg: b100.clone(),
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(360_937)],
                        Backup,
                    ),
                    (
                        100_000,
                        In::Adv(A, 150, 10),
                        vec![Out::Arm(460_937)],
                        Backup,
                    ),
                    (200_000, In::Adv(A, 0, 10), vec![Out::Arm(260_937)], Backup),
                    (
                        260_937,
                        In::Timer,
                        vec![
                            Out::Send(100),
                            to(
                                Master,
                                "master 10.99.0.2 sent priority 0, skew time expired",
                            ),
                            Out::Arm(360_937),
                        ],
                        Master,
                    ),
                ],
            },
            Scenario {
                what: "preempt: higher-priority backup ignores a lower master and takes over",
                cfg: b150.clone(),
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(341_406)],
                        Backup,
                    ),
                    (100_000, In::Adv("10.99.0.3", 100, 10), vec![], Backup),
                    (200_000, In::Adv("10.99.0.3", 100, 10), vec![], Backup),
                    (
                        341_406,
                        In::Timer,
                        vec![
                            Out::Send(150),
                            to(Master, "preempting lower priority 100 from 10.99.0.3"),
                            Out::Arm(441_406),
                        ],
                        Master,
                    ),
                ],
            },
            Scenario {
                what: "nopreempt: higher-priority backup stays backup under a lower master",
                cfg: nopreempt,
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(341_406)],
                        Backup,
                    ),
                    (
                        100_000,
                        In::Adv("10.99.0.3", 100, 10),
                        vec![Out::Arm(441_406)],
                        Backup,
                    ),
                    (
                        200_000,
                        In::Adv("10.99.0.3", 100, 10),
                        vec![Out::Arm(541_406)],
                        Backup,
                    ),
                    (541_405, In::Timer, vec![], Backup),
                ],
            },
            Scenario {
                what: "preempt_delay: lower master accepted for 250 ms after first heard",
                cfg: delayed,
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(341_406)],
                        Backup,
                    ),
                    (
                        100_000,
                        In::Adv("10.99.0.3", 100, 10),
                        vec![Out::Arm(441_406)],
                        Backup,
                    ),
                    (
                        200_000,
                        In::Adv("10.99.0.3", 100, 10),
                        vec![Out::Arm(541_406)],
                        Backup,
                    ),
                    (
                        300_000,
                        In::Adv("10.99.0.3", 100, 10),
                        vec![Out::Arm(641_406)],
                        Backup,
                    ),
                    (350_000, In::Adv("10.99.0.3", 100, 10), vec![], Backup),
                    (450_000, In::Adv("10.99.0.3", 100, 10), vec![], Backup),
                    (
                        641_406,
                        In::Timer,
                        vec![
                            Out::Send(150),
                            to(Master, "preempting lower priority 100 from 10.99.0.3"),
                            Out::Arm(741_406),
                        ],
                        Master,
                    ),
                ],
            },
            Scenario {
                what: "master yields to a higher priority and learns its interval",
                cfg: b100.clone(),
                steps: with(
                    to_master(),
                    vec![(
                        400_000,
                        In::Adv(A, 150, 100),
                        // 1 s: Skew = 156 * 1000000 / 256 = 609375; Down = 3609375.
                        vec![
                            to(Backup, "higher priority 150 from 10.99.0.2"),
                            Out::Arm(4_009_375),
                        ],
                        Backup,
                    )],
                ),
            },
            Scenario {
                what: "split brain at equal priority: the lower address yields",
                cfg: b100.clone(),
                steps: with(
                    to_master(),
                    vec![
                        (400_000, In::Adv(A, 100, 10), vec![Out::Send(100)], Master),
                        (
                            410_000,
                            In::Adv(C, 100, 10),
                            vec![
                                to(Backup, "equal priority 100 from higher address 10.99.0.4"),
                                Out::Arm(770_937),
                            ],
                            Backup,
                        ),
                    ],
                ),
            },
            Scenario {
                what: "master answers a lower priority at once and keeps its timer",
                cfg: b100.clone(),
                steps: with(
                    to_master(),
                    vec![
                        (400_000, In::Adv(A, 50, 10), vec![Out::Send(100)], Master),
                        (
                            460_937,
                            In::Timer,
                            vec![Out::Send(100), Out::Arm(560_937)],
                            Master,
                        ),
                    ],
                ),
            },
            Scenario {
                what: "master hearing priority 0 sends at once and restarts its timer",
                cfg: b100.clone(),
                steps: with(
                    to_master(),
                    vec![(
                        400_000,
                        In::Adv(A, 0, 10),
                        vec![Out::Send(100), Out::Arm(500_000)],
                        Master,
                    )],
                ),
            },
            Scenario {
                what: "own advert looped back is ignored",
                cfg: b100.clone(),
                steps: with(
                    to_master(),
                    vec![(400_000, In::Adv("10.99.0.3", 100, 10), vec![], Master)],
                ),
            },
            Scenario {
                what: "master shutdown sends priority 0; restart comes back as backup",
                cfg: b100.clone(),
                steps: with(
                    to_master(),
                    vec![
                        (
                            400_000,
                            In::Shutdown,
                            vec![Out::Send(0), to(Initialize, "shutdown"), Out::Cancel],
                            Initialize,
                        ),
                        (450_000, In::Timer, vec![], Initialize),
                        (450_000, In::Adv(A, 150, 10), vec![], Initialize),
                        (
                            500_000,
                            In::Start,
                            vec![to(Backup, "startup"), Out::Arm(860_937)],
                            Backup,
                        ),
                    ],
                ),
            },
            Scenario {
                what: "backup shutdown sends nothing",
                cfg: b100.clone(),
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(360_937)],
                        Backup,
                    ),
                    (
                        10,
                        In::Shutdown,
                        vec![to(Initialize, "shutdown"), Out::Cancel],
                        Initialize,
                    ),
                    (20, In::Shutdown, vec![], Initialize),
                ],
            },
            Scenario {
                what: "tracked interfaces: any down is Fault, all up restarts",
                cfg: b100.clone(),
                steps: with(
                    to_master(),
                    vec![
                        (
                            400_000,
                            In::Link("eth0", false),
                            vec![
                                Out::Send(0),
                                to(Fault, "tracked interface eth0 down"),
                                Out::Cancel,
                            ],
                            Fault,
                        ),
                        (410_000, In::Link("eth1", false), vec![], Fault),
                        (420_000, In::Adv(A, 150, 10), vec![], Fault),
                        (430_000, In::Timer, vec![], Fault),
                        (440_000, In::Link("eth0", true), vec![], Fault),
                        (
                            500_000,
                            In::Link("eth1", true),
                            vec![to(Backup, "tracked interface eth1 up"), Out::Arm(860_937)],
                            Backup,
                        ),
                        (
                            600_000,
                            In::Link("eth1", false),
                            vec![to(Fault, "tracked interface eth1 down"), Out::Cancel],
                            Fault,
                        ),
                    ],
                ),
            },
            Scenario {
                what: "start with a tracked interface down is Fault",
                cfg: b100.clone(),
                steps: vec![
                    (0, In::Link("eth0", false), vec![], Initialize),
                    (
                        0,
                        In::Start,
                        vec![to(Fault, "tracked interface eth0 down")],
                        Fault,
                    ),
                    (
                        100,
                        In::Link("eth0", true),
                        vec![to(Backup, "tracked interface eth0 up"), Out::Arm(361_037)],
                        Backup,
                    ),
                ],
            },
            Scenario {
                what: "v2: Skew_Time is (256-p)/256 s and the interval is not learned",
                cfg: cfg(2, 100, 1000, "10.99.0.3"),
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(3_609_375)],
                        Backup,
                    ),
                    (
                        1_000_000,
                        In::Adv(A, 150, 300),
                        vec![Out::Arm(4_609_375)],
                        Backup,
                    ),
                    (
                        2_000_000,
                        In::Adv(A, 0, 100),
                        vec![Out::Arm(2_609_375)],
                        Backup,
                    ),
                ],
            },
            Scenario {
                what: "v2 with a 2 s interval: Down = 6 s + 609375 us",
                cfg: cfg(2, 100, 2000, "10.99.0.3"),
                steps: vec![(
                    0,
                    In::Start,
                    vec![to(Backup, "startup"), Out::Arm(6_609_375)],
                    Backup,
                )],
            },
            Scenario {
                what: "IPv6 equal priority compares addresses",
                cfg: cfg(3, 100, 100, "fe80::3"),
                steps: vec![
                    (
                        0,
                        In::Start,
                        vec![to(Backup, "startup"), Out::Arm(360_937)],
                        Backup,
                    ),
                    (
                        360_937,
                        In::Timer,
                        vec![
                            Out::Send(100),
                            to(Master, "master down interval expired"),
                            Out::Arm(460_937),
                        ],
                        Master,
                    ),
                    (
                        400_000,
                        In::Adv("fe80::2", 100, 10),
                        vec![Out::Send(100)],
                        Master,
                    ),
                    (
                        410_000,
                        In::Adv("fe80::10", 100, 10),
                        vec![
                            to(Backup, "equal priority 100 from higher address fe80::10"),
                            Out::Arm(770_937),
                        ],
                        Backup,
                    ),
                ],
            },
        ]
    }

    #[test]
    fn scenarios_table() {
        let all = scenarios();
        assert!(all.len() >= 18);
        for s in &all {
            run(s);
        }
    }

    #[test]
    fn skew_and_down_interval_formulas() {
        let mut m = Machine::new(cfg(3, 1, 1000, "10.0.0.1"));
        assert_eq!(m.skew_time(), Duration::from_micros(255 * 1_000_000 / 256));
        m = Machine::new(cfg(3, 254, 10, "10.0.0.1"));
        assert_eq!(m.skew_time(), Duration::from_micros(2 * 10_000 / 256));
        assert_eq!(m.master_down_interval(), Duration::from_micros(30_000 + 78));
        m = Machine::new(cfg(2, 200, 3000, "10.0.0.1"));
        assert_eq!(m.skew_time(), Duration::from_micros(56 * 1_000_000 / 256));
        assert_eq!(m.master_down_interval(), Duration::from_micros(9_218_750));
    }
}
