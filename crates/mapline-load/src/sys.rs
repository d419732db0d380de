//! What the kernel says about a process (`/proc`), the disk's fsync floor and the machine.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// CPU seconds (user + system) and memory of a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    pub cpu_s: f64,
    pub rss: u64,
    pub peak_rss: u64,
}

/// Reads `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/status` (VmRSS, VmHWM).
pub fn proc_stats(pid: &str) -> Result<ProcStats> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(ProcStats {
        cpu_s: cpu_seconds(&stat, clock_ticks())?,
        rss: status_kib(&status, "VmRSS")? * 1024,
        peak_rss: status_kib(&status, "VmHWM")? * 1024,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in seconds. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after the last `)`.
fn cpu_seconds(stat: &str, ticks_per_s: f64) -> Result<f64> {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("no command name in stat line");
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
        bail!("stat line too short");
    };
    let ticks: u64 = u.parse::<u64>()? + s.parse::<u64>()?;
    Ok(ticks as f64 / ticks_per_s)
}

fn status_kib(status: &str, key: &str) -> Result<u64> {
    for line in status.lines() {
        if let Some(v) = line.strip_prefix(key).and_then(|l| l.strip_prefix(':')) {
            let kib = v.trim().trim_end_matches("kB").trim();
            return Ok(kib.parse()?);
        }
    }
    bail!("no {key} in status")
}

/// Writes and fsyncs a small file `n` times in `dir`: each write + fsync's duration in µs.
pub fn fsync_floor(dir: &Path, n: usize) -> Result<Vec<u64>> {
    let path = dir.join("fsync-probe");
    let mut file = fs::File::create(&path).context("creating the fsync probe")?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        file.write_all(format!("{i:064}\n").as_bytes())?;
        file.sync_all()?;
        samples.push(started.elapsed().as_micros() as u64);
    }
    drop(file);
    fs::remove_file(&path)?;
    Ok(samples)
}

/// "2 × AMD EPYC" from nproc and /proc/cpuinfo's model name.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| status_kib(&m, "MemTotal").ok())
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB RAM", kib as f64 / 1048576.0)
        });
    format!("nproc {cpus}, {model}{mem}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_utime_plus_stime_even_with_a_strange_command_name() {
        let stat = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        let cpu = cpu_seconds(stat, 100.0).ok();
        assert_eq!(cpu, Some(3.0));
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let status = "Name:\tmapline\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS").ok(), Some(1024));
        assert_eq!(status_kib(status, "VmHWM").ok(), Some(2048));
        assert!(status_kib(status, "VmSwap").is_err());
    }

    #[test]
    fn this_process_can_be_read() {
        let me = proc_stats("self").ok();
        assert!(me.is_some_and(|s| s.rss > 0 && s.peak_rss >= s.rss));
    }
}
