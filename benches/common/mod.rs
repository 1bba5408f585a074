//! Shared by the benches: criterion's measurement of the benchmark thread's CPU time
//! (`XLB_BENCH_CPU_TIME=1`), steadier than wall time on a shared, noisy machine, and the
//! common criterion set-up (`configure`, `run_benches!`).

#![allow(dead_code)]

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// CPU time of the calling thread, in nanoseconds.
pub struct ThreadCpuTime;

static WALL: WallTime = WallTime;

pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID always exists on
    // Linux. On failure `ts` stays zero, which only spoils the measurement.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

/// The benches' criterion settings (short warm-up and measurement: the machine is
/// shared; command-line arguments still apply).
pub fn configure<T: criterion::measurement::Measurement>(
    c: criterion::Criterion<T>,
) -> criterion::Criterion<T> {
    c.warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// Runs the given bench functions (each generic over the measurement) with wall time, or
/// with the thread's CPU time when `XLB_BENCH_CPU_TIME` is set.
macro_rules! run_benches {
    ($($f:ident),+ $(,)?) => {
        if std::env::var_os("XLB_BENCH_CPU_TIME").is_some() {
            let mut c = common::configure(
                criterion::Criterion::default().with_measurement(common::ThreadCpuTime),
            );
            $($f(&mut c);)+
            c.final_summary();
        } else {
            let mut c = common::configure(criterion::Criterion::default());
            $($f(&mut c);)+
            c.final_summary();
        }
    };
}
