//! End-to-end operations tests in the netns lab (root only): xlb runs in director d1
//! (env!("CARGO_BIN_EXE_xlb")), the client c sends real HTTP through the VIP to the real
//! servers r1..r3.
//!
//! - Hot reload under traffic: a new connection every ~20 ms and one keep-alive
//!   connection through the VIP during 10 reloads (`xlb reload` and SIGHUP) that change
//!   weights and remove and re-add a real server: no request fails, the keep-alive
//!   connection stays on its server. Then an invalid file (exit 64, every error listed,
//!   traffic continues on the old config) and a file needing a restart (exit 78).
//! - Metrics scraped with curl inside d1 move with the traffic the test sends; `/healthz`
//!   and `/readyz` answer; `xlb status` and `--json` show the services and servers.
//! - Shutdown: SIGTERM sends a VRRP priority-0 advert, removes the VIP, detaches XDP,
//!   removes the control socket, exits 0; `--log-format json` logs only JSON lines.

mod common;

use common::{ip4, mac, require_root, Lab, REALS, VIP4};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const XLB: &str = env!("CARGO_BIN_EXE_xlb");

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config for d1 serving VIP4:80 with `servers` (host, weight); `head` goes first.
fn config(lab: &Lab, head: &str, vrrp: &str, servers: &[(&str, u32)]) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut c = format!(
        "{head}interface: eth0\nxdp_mode: native\n\
         workers: {{ queues: all, cores: [{}], batch_size: 64, frames: 4096 }}\n\
         flows: {{ capacity: 65536, tcp_timeout: 900s, tcp_fin_timeout: 2s, udp_timeout: 30s }}\n\
         metrics: {{ listen: \"127.0.0.1:9650\" }}\n\
         control_socket: {}\n{vrrp}\
         virtual_servers:\n  - name: web4\n    vip: {VIP4}\n    ports: [80]\n    protocol: tcp\n\
         \x20   table_size: 65537\n",
        cpus - 1,
        socket(lab).display()
    );
    if !vrrp.is_empty() {
        c.push_str("    vrrp: VI_1\n");
    }
    c.push_str("    real_servers:\n");
    for (h, w) in servers {
        c.push_str(&format!(
            "      - {{ address: {}, mac: \"{}\", weight: {w} }}\n",
            ip4(h),
            mac(h)
        ));
    }
    c
}

fn socket(lab: &Lab) -> PathBuf {
    lab.run_dir().join("xlb.sock")
}

fn cfg_path(lab: &Lab) -> PathBuf {
    lab.run_dir().join("xlb.yaml")
}

/// The daemon in d1; killed (SIGKILL) on drop if still running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(lab: &Lab, cfg: &str, log_args: &[&str]) -> Daemon {
        std::fs::write(cfg_path(lab), cfg).unwrap();
        let path = cfg_path(lab);
        let mut args = vec![XLB];
        args.extend_from_slice(log_args);
        args.extend_from_slice(&["run", "--config", path.to_str().unwrap()]);
        let (child, log) = lab.spawn_logged("d1", &args, "xlb.log");
        let mut d = Daemon { child, log };
        // Ready when the control socket answers and the VIP serves HTTP (bounded).
        for _ in 0..150 {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("xlb exited early ({st}): {}", d.log_text());
            }
            let ok = socket(lab).exists()
                && lab
                    .exec(
                        "c",
                        &[
                            "curl",
                            "-s",
                            "-m",
                            "0.5",
                            "-o",
                            "/dev/null",
                            &format!("http://{VIP4}/"),
                        ],
                    )
                    .status
                    .success();
            if ok {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("xlb did not serve {VIP4} within 15 s: {}", d.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits (bounded) for the exit status.
    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("xlb did not exit within {limit:?}: {}", self.log_text());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn xlb(lab: &Lab, args: &[&str]) -> Output {
    let mut a = vec![XLB];
    a.extend_from_slice(args);
    lab.exec("d1", &a)
}

fn reload(lab: &Lab) -> Output {
    xlb(lab, &["reload", "--socket", socket(lab).to_str().unwrap()])
}

fn status_json(lab: &Lab) -> serde_json::Value {
    let o = xlb(
        lab,
        &[
            "status",
            "--json",
            "--socket",
            socket(lab).to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// Client loops, written to the run dir and run with python in the client namespace.
const LOOP_PY: &str = r#"
import http.client, os, sys, time
vip, stop, maxn = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(maxn):
    if os.path.exists(stop):
        break
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection(vip, 80, timeout=3)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        c.close()
        if r.status == 200:
            print(f"ok {i} {r.getheader('X-Real-Server')}", flush=True)
        else:
            print(f"FAIL {i} status {r.status}", flush=True)
    except Exception as e:
        print(f"FAIL {i} {type(e).__name__}: {e}", flush=True)
    time.sleep(max(0.0, 0.02 - (time.monotonic() - t0)))
print("done", flush=True)
"#;

/// `CONNS` keep-alive connections, each asked every 100 ms; a failure ends the script.
const KEEPALIVE_PY: &str = r#"
import http.client, os, sys, time
vip, stop, maxn, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cs = [http.client.HTTPConnection(vip, 80, timeout=3) for _ in range(conns)]
for i in range(maxn):
    if os.path.exists(stop):
        break
    for k, c in enumerate(cs):
        try:
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            print(f"ok {i} {k} {r.status} {r.getheader('X-Real-Server')} {r.getheader('X-Client')}", flush=True)
        except Exception as e:
            print(f"FAIL {i} {k} {type(e).__name__}: {e}", flush=True)
            sys.exit(1)
    time.sleep(0.1)
print("done", flush=True)
"#;

/// Keep-alive connections held through the reloads.
const CONNS: usize = 6;

/// Sum of every sample of a metric family whose labels contain `filter`.
fn metric_sum(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn scrape(lab: &Lab, path: &str) -> (String, String) {
    let o = lab.exec(
        "d1",
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "-w",
            "\n%{http_code}",
            &format!("http://127.0.0.1:9650{path}"),
        ],
    );
    assert!(o.status.success(), "curl {path}: {}", text(&o));
    let body = String::from_utf8_lossy(&o.stdout).into_owned();
    let (b, code) = body.rsplit_once('\n').unwrap();
    (b.to_owned(), code.to_owned())
}

/// Writes the client scripts into the lab's run directory and starts the keep-alive
/// client in c (CONNS connections to VIP4 for at most `secs` s, until the stop file
/// appears): the client, its log and the stop file's path.
fn start_keepalive(lab: &Lab, secs: &str) -> (Child, PathBuf, PathBuf) {
    let dir = lab.run_dir();
    std::fs::write(dir.join("loop.py"), LOOP_PY).unwrap();
    std::fs::write(dir.join("keepalive.py"), KEEPALIVE_PY).unwrap();
    let stop = dir.join("stop");
    let (ka, ka_log) = lab.spawn_logged(
        "c",
        &[
            python(),
            dir.join("keepalive.py").to_str().unwrap(),
            VIP4,
            stop.to_str().unwrap(),
            secs,
            &CONNS.to_string(),
        ],
        "keepalive.log",
    );
    (ka, ka_log, stop)
}

/// The first line of `log` that starts with `prefix`, waiting for it up to 10 s.
fn first_line(log: &Path, prefix: &str) -> String {
    for _ in 0..100 {
        let t = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(l) = t.lines().find(|l| l.starts_with(prefix)) {
            return l.to_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "no line {prefix:?} within 10 s: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

#[test]
fn reload_under_traffic_loses_no_request_and_keeps_the_keepalive_connection() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("reload_under_traffic_loses_no_request_and_keeps_the_keepalive_connection");
    let all: Vec<(&str, u32)> = REALS.iter().map(|h| (*h, 1)).collect();
    let mut d = Daemon::start(&lab, &config(&lab, "", "", &all), &[]);

    // --- traffic: one keep-alive connection, and a new connection every ~20 ms.
    let (mut ka, ka_log, stop) = start_keepalive(&lab, "1200");
    let dir = lab.run_dir();
    let stop_s = stop.to_str().unwrap();
    // (server, client address) of each keep-alive connection, from its first answer.
    let mut pinned: Vec<(String, String)> = Vec::new();
    for k in 0..CONNS {
        let line = first_line(&ka_log, &format!("ok 0 {k} "));
        let f: Vec<&str> = line.split(' ').collect();
        assert!(REALS.contains(&f[4]), "{line}");
        pinned.push((f[4].to_owned(), f[5].to_owned()));
    }
    let ka_server = pinned[0].0.clone();
    let (mut lp, lp_log) = lab.spawn_logged(
        "c",
        &[
            python(),
            dir.join("loop.py").to_str().unwrap(),
            VIP4,
            stop_s,
            "6000",
        ],
        "loop.log",
    );
    first_line(&lp_log, "ok ");

    // --- 10 reloads: weights change every time; `toggled` (not the first keep-alive
    // connection's server, but preferably one holding another keep-alive connection, which
    // must then survive its server's removal: removed servers drain) leaves on even rounds
    // and comes back on odd ones. Rounds 4 and 9 use SIGHUP.
    let toggled = *REALS
        .iter()
        .filter(|h| **h != ka_server)
        .max_by_key(|h| pinned.iter().filter(|p| p.0 == **h).count())
        .unwrap();
    let on_toggled = pinned.iter().filter(|p| p.0 == toggled).count();
    for round in 0..10u32 {
        let servers: Vec<(&str, u32)> = REALS
            .iter()
            .enumerate()
            .filter(|(_, h)| round % 2 == 1 || **h != toggled)
            .map(|(i, h)| (*h, 1 + (round + i as u32) % 3))
            .collect();
        std::fs::write(cfg_path(&lab), config(&lab, "", "", &servers)).unwrap();
        if round == 4 || round == 9 {
            let before = status_json(&lab)["reloads"].as_u64().unwrap();
            d.signal("-HUP");
            let mut n = before;
            for _ in 0..50 {
                n = status_json(&lab)["reloads"].as_u64().unwrap();
                if n > before {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert_eq!(n, before + 1, "SIGHUP did not reload: {}", d.log_text());
        } else {
            let o = reload(&lab);
            assert!(o.status.success(), "reload {round}: {}", text(&o));
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.contains("reload applied"), "{out}");
            assert!(
                out.contains("weight of real server"),
                "round {round}: {out}"
            );
        }
        // The running config is the new one.
        let st = status_json(&lab);
        let shown: Vec<(String, u64)> = st["services"][0]["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["address"].as_str().unwrap().to_owned(),
                    r["weight"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64)> = servers
            .iter()
            .map(|(h, w)| (ip4(h).to_owned(), u64::from(*w)))
            .collect();
        assert_eq!(shown, want, "round {round}");
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&stop, "").unwrap();
    let ka_status = ka.wait().unwrap();
    let lp_status = lp.wait().unwrap();

    let ka_text = std::fs::read_to_string(&ka_log).unwrap();
    let lp_text = std::fs::read_to_string(&lp_log).unwrap();
    assert!(
        ka_status.success(),
        "keep-alive connection failed:\n{ka_text}"
    );
    assert!(lp_status.success(), "{lp_text}");
    // Every keep-alive answer came from its connection's first server, over that same
    // connection (same client address and port).
    let ka_answers: Vec<&str> = ka_text.lines().filter(|l| l.starts_with("ok ")).collect();
    assert!(ka_answers.len() >= 30 * CONNS, "{ka_text}");
    for l in &ka_answers {
        let f: Vec<&str> = l.split(' ').collect();
        let k: usize = f[2].parse().unwrap();
        assert_eq!(
            (f[3], f[4], f[5]),
            ("200", pinned[k].0.as_str(), pinned[k].1.as_str()),
            "keep-alive connection {k} moved: {l}"
        );
    }
    assert!(ka_text.trim_end().ends_with("done"), "{ka_text}");
    // No new connection failed; all three servers answered some.
    let fails: Vec<&str> = lp_text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fails.is_empty(),
        "{} failed requests: {fails:?}",
        fails.len()
    );
    let answers: Vec<&str> = lp_text
        .lines()
        .filter(|l| l.starts_with("ok "))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert!(answers.len() >= 150, "only {} requests", answers.len());
    let who: HashSet<&str> = answers.iter().copied().collect();
    assert_eq!(who.len(), 3, "servers that answered: {who:?}");
    eprintln!(
        "reload test: {} requests over new connections, {} on {CONNS} keep-alive connections \
         ({on_toggled} of them on {toggled}, removed and re-added 5 times), 0 failed",
        answers.len(),
        ka_answers.len()
    );

    // --- an invalid file: exit 64 with every error, the old config keeps running.
    let good = std::fs::read_to_string(cfg_path(&lab)).unwrap();
    let bad = good
        .replace("weight: 1 }", "weight: 70000 }")
        .replace("batch_size: 64", "batch_size: 64, bogus: 1");
    std::fs::write(cfg_path(&lab), &bad).unwrap();
    let o = reload(&lab);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the running configuration stays"), "{err}");
    assert!(err.contains("bogus"), "{err}");
    let bad = good
        .replace("weight: 1 }", "weight: 70000 }")
        .replace("ports: [80]", "ports: [80, 99999]");
    std::fs::write(cfg_path(&lab), &bad).unwrap();
    let o = reload(&lab);
    assert_eq!(o.status.code(), Some(64), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 errors:"), "{err}");
    assert!(err.contains("real_servers[0].weight"), "{err}");
    assert!(err.contains("ports"), "{err}");
    assert!(
        d.log_text().contains("real_servers[0].weight"),
        "errors not logged"
    );
    let before = status_json(&lab);
    for i in 0..5 {
        let o = lab.exec("c", &["curl", "-s", "-m", "3", &format!("http://{VIP4}/")]);
        assert!(
            o.status.success(),
            "request {i} after an invalid reload: {}",
            text(&o)
        );
    }
    // --- a key that needs a restart: refused with exit 78, nothing changes.
    std::fs::write(
        cfg_path(&lab),
        good.replace("xdp_mode: native", "xdp_mode: generic"),
    )
    .unwrap();
    let o = reload(&lab);
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("xdp_mode"),
        "{}",
        text(&o)
    );
    let after = status_json(&lab);
    assert_eq!(before["generation"], after["generation"]);
    assert_eq!(
        before["services"][0]["real_servers"]
            .as_array()
            .unwrap()
            .len(),
        after["services"][0]["real_servers"]
            .as_array()
            .unwrap()
            .len()
    );

    // --- metrics move with the traffic sent now.
    let (h, code) = scrape(&lab, "/healthz");
    assert_eq!((h.trim(), code.as_str()), ("ok", "200"));
    let (_, code) = scrape(&lab, "/readyz");
    assert_eq!(code, "200");
    let (m0, code) = scrape(&lab, "/metrics");
    assert_eq!(code, "200");
    let n = 20;
    for i in 0..n {
        let o = lab.exec(
            "c",
            &[
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                &format!("http://{VIP4}/"),
            ],
        );
        assert!(o.status.success(), "request {i}: {}", text(&o));
    }
    let (m1, _) = scrape(&lab, "/metrics");
    let delta =
        |name: &str, filter: &str| metric_sum(&m1, name, filter) - metric_sum(&m0, name, filter);
    let vip = format!("vip=\"{VIP4}\"");
    // A request on a new connection is at least SYN, ACK, request, FIN, ACK.
    let pk = delta("xlb_backend_packets_total", &vip);
    assert!(
        pk >= f64::from(5 * n),
        "backend packets moved by {pk}\n{m1}"
    );
    let by = delta("xlb_backend_bytes_total", &vip);
    assert!(by >= 54.0 * pk, "bytes moved by {by} for {pk} packets");
    let nf = delta("xlb_backend_new_flows_total", &vip);
    assert!(nf >= 1.0 && nf <= f64::from(n), "new flows moved by {nf}");
    assert!(delta("xlb_worker_rx_packets_total", "") >= pk);
    assert!(delta("xlb_worker_tx_packets_total", "") >= pk);
    // The XDP program's per-CPU counters are sampled every 100 ms: re-scrape (bounded)
    // until the sample covers the requests.
    let mut xdp = 0.0;
    for _ in 0..30 {
        let (m2, _) = scrape(&lab, "/metrics");
        let f = "verdict=\"redirected\"";
        xdp = metric_sum(&m2, "xlb_xdp_packets_total", f)
            - metric_sum(&m0, "xlb_xdp_packets_total", f);
        if xdp >= pk {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(xdp >= pk, "XDP redirected moved by {xdp}, backends by {pk}");
    assert!(metric_sum(&m1, "xlb_service_healthy_backends", &vip) >= 2.0);
    assert_eq!(metric_sum(&m1, "xlb_ready", ""), 1.0);
    assert!(m1.contains("xlb_worker_batch_size_bucket{"), "{m1}");
    assert!(metric_sum(&m1, "xlb_config_reloads_total", "result=\"applied\"") >= 10.0);
    assert_eq!(
        metric_sum(&m1, "xlb_config_reloads_total", "result=\"invalid\""),
        2.0
    );
    assert_eq!(
        metric_sum(&m1, "xlb_config_reloads_total", "result=\"refused\""),
        1.0
    );

    // --- status: the table and JSON show the service and every server with counters.
    let o = xlb(
        &lab,
        &["status", "--socket", socket(&lab).to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains(&format!("TCP  {VIP4}:80")), "{table}");
    for h in REALS {
        assert!(table.contains(&format!("  -> {}", ip4(h))), "{table}");
    }
    let st = status_json(&lab);
    assert_eq!(st["ready"], true);
    assert!(st["reloads"].as_u64().unwrap() >= 10);
    let rs = st["services"][0]["real_servers"].as_array().unwrap();
    let pk: HashMap<String, u64> = rs
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(pk.values().all(|p| *p > 0), "{st}");
    // Nothing is logged per packet: the log stays small after thousands of packets.
    let lines = d.log_text().lines().count();
    assert!(lines < 400, "{lines} log lines");

    d.signal("-TERM");
    let st = d.wait(Duration::from_secs(10));
    assert!(st.success(), "exit {st}: {}", d.log_text());
}

/// Issue 4, "weight 0 (configured)": a reload that sets a real server's weight to 0 drains
/// it: its established keep-alive connections keep being answered by it, new connections
/// go to the others.
#[test]
fn configured_weight_zero_drains_an_established_connection() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("configured_weight_zero_drains_an_established_connection");
    let all: Vec<(&str, u32)> = REALS.iter().map(|h| (*h, 1)).collect();
    let mut d = Daemon::start(&lab, &config(&lab, "", "", &all), &[]);
    let (mut ka, ka_log, stop) = start_keepalive(&lab, "600");
    let dir = lab.run_dir();
    let stop_s = stop.to_str().unwrap();
    // The server of the first keep-alive connection gets drained.
    let first = first_line(&ka_log, "ok 0 0 ");
    let f: Vec<&str> = first.split(' ').collect();
    let (drained, client) = (f[4].to_owned(), f[5].to_owned());
    assert!(REALS.contains(&drained.as_str()), "{first}");

    let servers: Vec<(&str, u32)> = REALS
        .iter()
        .map(|h| (*h, if *h == drained { 0 } else { 1 }))
        .collect();
    std::fs::write(cfg_path(&lab), config(&lab, "", "", &servers)).unwrap();
    let o = reload(&lab);
    assert!(o.status.success(), "reload: {}", text(&o));
    let reloaded_at = std::fs::read_to_string(&ka_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("ok "))
        .count();

    // 60 new connections: none reaches the drained server.
    let (mut lp, lp_log) = lab.spawn_logged(
        "c",
        &[
            python(),
            dir.join("loop.py").to_str().unwrap(),
            VIP4,
            stop_s,
            "60",
        ],
        "loop.log",
    );
    let lp_status = lp.wait().unwrap();
    assert!(lp_status.success());
    let lp_text = std::fs::read_to_string(&lp_log).unwrap();
    let answers: Vec<&str> = lp_text
        .lines()
        .filter(|l| l.starts_with("ok "))
        .map(|l| l.rsplit(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(
        answers.len(),
        60,
        "every new connection answered: {lp_text}"
    );
    assert!(
        answers.iter().all(|a| *a != drained),
        "a new connection reached the drained server {drained}: {lp_text}"
    );

    // The keep-alive connection on the drained server kept being answered by it.
    std::fs::write(&stop, "").unwrap();
    assert!(
        ka.wait().unwrap().success(),
        "a keep-alive connection failed"
    );
    let ka_text = std::fs::read_to_string(&ka_log).unwrap();
    let after: Vec<&str> = ka_text
        .lines()
        .filter(|l| l.starts_with("ok "))
        .skip(reloaded_at)
        .filter(|l| l.split(' ').nth(2) == Some("0"))
        .collect();
    assert!(after.len() >= 5, "answers after the reload: {ka_text}");
    for l in &after {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!((f[4], f[5]), (drained.as_str(), client.as_str()), "{l}");
    }
    assert!(!ka_text.contains("FAIL"), "{ka_text}");

    // A reload that leaves no real server able to take new flows logs one ERROR line; the
    // reload that brings one back logs one INFO line.
    let none: Vec<(&str, u32)> = REALS.iter().map(|h| (*h, 0)).collect();
    std::fs::write(cfg_path(&lab), config(&lab, "", "", &none)).unwrap();
    let o = reload(&lab);
    assert!(o.status.success(), "reload: {}", text(&o));
    std::fs::write(cfg_path(&lab), config(&lab, "", "", &all)).unwrap();
    let o = reload(&lab);
    assert!(o.status.success(), "reload: {}", text(&o));
    let log = d.log_text();
    let down = log.find("web4: no real server is up; new flows are dropped");
    let up = log.find("web4: a real server is up again");
    assert!(down.is_some() && up > down, "{log}");
    d.signal("-TERM");
    assert!(d.wait(Duration::from_secs(10)).success());
}

#[test]
fn sigterm_sends_priority_zero_removes_the_vip_and_detaches_xdp() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("sigterm_sends_priority_zero_removes_the_vip_and_detaches_xdp");
    let vrrp =
        "vrrp:\n  - { name: VI_1, vrid: 51, priority: 150, version: 3, advert_interval: 100ms }\n";
    let all: Vec<(&str, u32)> = REALS.iter().map(|h| (*h, 1)).collect();
    let mut d = Daemon::start(
        &lab,
        &config(&lab, "", vrrp, &all),
        &["--log-format", "json"],
    );
    let st = status_json(&lab);
    assert_eq!(st["vrrp"][0]["state"], "MASTER", "{st}");

    // Thread placement: the worker pinned to its core (config(): the last CPU), every
    // other thread (control: VRRP, health checks; metrics) kept off it.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus > 1 {
        let worker_core = cpus - 1;
        let threads = thread_cpus(d.child.id());
        let (workers, others): (Vec<_>, Vec<_>) = threads
            .iter()
            .partition(|(name, _)| name.starts_with("xlb-worker"));
        assert_eq!(workers.len(), 1, "{threads:?}");
        assert_eq!(workers[0].1, vec![worker_core], "{threads:?}");
        assert!(others.len() >= 2, "{threads:?}");
        for (name, allowed) in &others {
            assert!(
                !allowed.is_empty() && !allowed.contains(&worker_core),
                "thread {name} may run on the worker's core {worker_core}: {threads:?}"
            );
        }
    }

    // Gauges settle without traffic: the start-up probes' closed connections (FIN, 2 s
    // timeout) expire while the queue is quiet, and the flow gauges follow (bounded).
    let (m, _) = scrape(&lab, "/metrics");
    assert!(metric_sum(&m, "xlb_worker_flows", "") >= 1.0, "{m}");
    let mut settled = None;
    for _ in 0..100 {
        let (m, _) = scrape(&lab, "/metrics");
        let flows = metric_sum(&m, "xlb_worker_flows", "");
        let active = metric_sum(&m, "xlb_backend_active_flows", "");
        if flows == 0.0 && active == 0.0 {
            settled = Some(m);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        settled.is_some(),
        "flow gauges did not reach 0 without traffic"
    );

    let addrs = lab.exec_ok("d1", &["ip", "-o", "addr", "show", "eth0"]);
    assert!(addrs.contains(&format!("inet {VIP4}/")), "{addrs}");
    assert!(lab
        .exec_ok("d1", &["ip", "link", "show", "eth0"])
        .contains("xdp"));

    // Capture VRRP on d1's bridge port while it stops.
    let pcap = lab.run_dir().join("vrrp.pcap");
    let (mut dump, dump_log) = lab.spawn_logged(
        "sw",
        &[
            "tcpdump",
            "-i",
            "port-d1",
            "--immediate-mode",
            "-U",
            "-n",
            "-w",
            pcap.to_str().unwrap(),
            "ip proto 112",
        ],
        "tcpdump.log",
    );
    for _ in 0..100 {
        if std::fs::read_to_string(&dump_log)
            .unwrap_or_default()
            .contains("listening on")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    d.signal("-TERM");
    let st = d.wait(Duration::from_secs(10));
    assert!(st.success(), "exit {st}: {}", d.log_text());
    std::thread::sleep(Duration::from_millis(200));
    let _ = Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();
    let r = Command::new("tcpdump")
        .args(["-r", pcap.to_str().unwrap(), "-n", "-v"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let adverts = String::from_utf8_lossy(&r.stdout);
    assert!(
        adverts.contains("prio 150"),
        "no regular adverts captured: {}\ntcpdump: {}",
        text(&r),
        std::fs::read_to_string(&dump_log).unwrap_or_default()
    );
    assert!(
        adverts.contains("prio 0"),
        "no priority-0 advert at shutdown: {adverts}"
    );

    let addrs = lab.exec_ok("d1", &["ip", "-o", "addr", "show", "eth0"]);
    assert!(!addrs.contains(VIP4), "VIP left on eth0: {addrs}");
    let link = lab.exec_ok("d1", &["ip", "link", "show", "eth0"]);
    assert!(!link.contains("xdp"), "XDP program left attached: {link}");
    assert!(!socket(&lab).exists(), "control socket left behind");
    // --log-format json: every line is a JSON object with a level and a message.
    let log = d.log_text();
    let mut n = 0;
    for l in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
        n += 1;
    }
    assert!(n >= 5, "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}

/// The capabilities the unit grants (AmbientCapabilities=), as setpriv names them.
/// (thread name, CPUs it may run on) of every thread of `pid`, from /proc.
fn thread_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("task dir") {
        let dir = t.expect("task").path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        else {
            continue;
        };
        let mut cpus = Vec::new();
        for part in list.trim().split(',').filter(|p| !p.is_empty()) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let (lo, hi): (usize, usize) = (lo.parse().expect("cpu"), hi.parse().expect("cpu"));
            cpus.extend(lo..=hi);
        }
        out.push((name.trim().to_string(), cpus));
    }
    out
}

fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(common::script("xlb.service")).unwrap();
    let line = |key: &str| -> Vec<String> {
        let l = unit
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in xlb.service"));
        l[key.len()..]
            .split_whitespace()
            .map(|c| c.trim_start_matches("CAP_").to_lowercase())
            .collect()
    };
    let ambient = line("AmbientCapabilities=");
    assert_eq!(
        ambient,
        line("CapabilityBoundingSet="),
        "bounding set differs"
    );
    assert!(!ambient.iter().any(|c| c == "sys_admin"), "{ambient:?}");
    ambient
}

/// Runs xlb as `nobody` in d1 with exactly `caps` (and a 4 MiB locked-memory limit, below
/// the 8 MiB UMEM of 4096 frames) until it serves the VIP or exits; then SIGTERM.
/// Returns (served, exit status, log).
fn run_unprivileged(lab: &Lab, caps: &[String]) -> (bool, std::process::ExitStatus, String) {
    let dir = lab.run_dir().join("unpriv");
    let bin = dir.join("xlb");
    let caps = caps
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(",");
    let set = format!("-all,{caps}");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &lab.netns("d1"),
        "prlimit",
        "--memlock=4194304:4194304",
    ])
    .args([
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
    ])
    .args([format!("--inh-caps={set}"), format!("--ambient-caps={set}")])
    .args([format!("--bounding-set={set}"), "--no-new-privs".into()])
    .arg(&bin)
    .args(["run", "--config", dir.join("xlb.yaml").to_str().unwrap()]);
    let log = dir.join("xlb.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let mut served = false;
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let o = lab.exec(
            "c",
            &[
                "curl",
                "-s",
                "-m",
                "0.5",
                "-o",
                "/dev/null",
                &format!("http://{VIP4}/"),
            ],
        );
        if o.status.success() {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if served {
        // The control socket belongs to nobody, mode 0600; root may still ask.
        let sock = dir.join("xlb.sock");
        let meta = std::fs::metadata(&sock).unwrap();
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(
            (meta.uid(), meta.permissions().mode() & 0o777),
            (65534, 0o600)
        );
        let o = xlb(lab, &["status", "--socket", sock.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        served,
        status,
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

#[test]
fn the_units_capabilities_suffice_for_an_unprivileged_user_and_each_is_needed() {
    if !require_root() {
        return;
    }
    let caps = unit_capabilities();
    let lab = Lab::up("the_units_capabilities_suffice_for_an_unprivileged_user_and_each_is_needed");
    // A directory nobody can write its socket into; a copy of the binary it can execute.
    let dir = lab.run_dir().join("unpriv");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(XLB, dir.join("xlb")).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "nobody:nogroup", dir.to_str().unwrap()])
        .status();
    assert!(chown.unwrap().success());
    use std::os::unix::fs::PermissionsExt;
    for p in [lab.run_dir(), dir.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let vrrp =
        "vrrp:\n  - { name: VI_1, vrid: 51, priority: 150, version: 3, advert_interval: 100ms }\n";
    let all: Vec<(&str, u32)> = REALS.iter().map(|h| (*h, 1)).collect();
    let cfg = config(&lab, "", vrrp, &all).replace(
        &socket(&lab).display().to_string(),
        &dir.join("xlb.sock").display().to_string(),
    );
    std::fs::write(dir.join("xlb.yaml"), cfg).unwrap();

    // The unit's set: serves (VRRP MASTER, VIP added, XDP attached, AF_XDP), stops cleanly.
    let (served, st, log) = run_unprivileged(&lab, &caps);
    assert!(
        served && st.success(),
        "with {caps:?}: served {served}, {st}\n{log}"
    );
    let addrs = lab.exec_ok("d1", &["ip", "-o", "addr", "show", "eth0"]);
    assert!(!addrs.contains(VIP4), "VIP left behind: {addrs}");
    assert!(!lab
        .exec_ok("d1", &["ip", "link", "show", "eth0"])
        .contains("xdp"));
    // Each capability is needed: without it xlb does not start (and says why).
    for drop in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != drop).cloned().collect();
        let (served, st, log) = run_unprivileged(&lab, &fewer);
        assert!(
            !served && !st.success(),
            "still works without {drop}: {st}\n{log}"
        );
        assert!(log.contains("ERROR"), "without {drop}: {log}");
        eprintln!(
            "without {drop}: {}",
            log.lines()
                .rev()
                .find(|l| l.contains("ERROR"))
                .unwrap_or("")
        );
        // A failed start leaves no XDP program behind.
        assert!(
            !lab.exec_ok("d1", &["ip", "link", "show", "eth0"])
                .contains("xdp"),
            "without {drop}"
        );
    }
}
