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

/// The kernel's count of connections a listening socket could not take because its accept
/// queue (the listen backlog) was full, for this network namespace (what `nstat -az
/// TcpExtListenOverflows TcpExtListenDrops` shows). A dropped SYN is retried by the client's
/// kernel after 1 s, 3 s, …: one overflow is a second added to someone's connect.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListenCounters {
    pub overflows: u64,
    pub drops: u64,
}

impl ListenCounters {
    /// What happened between `self` (before) and `after`.
    pub fn since(self, after: ListenCounters) -> ListenCounters {
        ListenCounters {
            overflows: after.overflows.saturating_sub(self.overflows),
            drops: after.drops.saturating_sub(self.drops),
        }
    }
}

/// Reads `/proc/net/netstat`.
pub fn listen_counters() -> Result<ListenCounters> {
    let text = fs::read_to_string("/proc/net/netstat").context("reading /proc/net/netstat")?;
    parse_listen_counters(&text)
}

/// `/proc/net/netstat` holds pairs of lines, `TcpExt: Name1 Name2 …` then `TcpExt: 1 2 …`.
fn parse_listen_counters(text: &str) -> Result<ListenCounters> {
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let Some(values) = lines.next() else { break };
        let (Some(names), Some(values)) = (
            names.strip_prefix("TcpExt:"),
            values.strip_prefix("TcpExt:"),
        ) else {
            continue;
        };
        let mut counters = (None, None);
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            match name {
                "ListenOverflows" => counters.0 = Some(value.parse::<u64>()?),
                "ListenDrops" => counters.1 = Some(value.parse::<u64>()?),
                _ => {}
            }
        }
        if let (Some(overflows), Some(drops)) = counters {
            return Ok(ListenCounters { overflows, drops });
        }
        bail!("TcpExt has no ListenOverflows or ListenDrops");
    }
    bail!("no TcpExt lines in /proc/net/netstat")
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

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), e.g. "1.07 1.10 1.53": the
/// machine is shared, so each run notes how busy it was.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_owned())
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
    fn listen_counters_are_read_by_name_from_the_tcpext_pair() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPBacklogDrop\n\
                       TcpExt: 3 19548 19560 0\n\
                       IpExt: InNoRoutes ListenOverflows\n\
                       IpExt: 0 7\n";
        assert_eq!(
            parse_listen_counters(netstat).ok(),
            Some(ListenCounters {
                overflows: 19548,
                drops: 19560
            })
        );
        // The same names in another section do not count; the order of sections does not matter.
        let later = "IpExt: ListenOverflows ListenDrops\nIpExt: 1 1\n\
                     TcpExt: ListenDrops ListenOverflows\nTcpExt: 5 4\n";
        assert_eq!(
            parse_listen_counters(later).ok(),
            Some(ListenCounters {
                overflows: 4,
                drops: 5
            })
        );
        assert!(parse_listen_counters("TcpExt: SyncookiesSent\nTcpExt: 1\n").is_err());
        assert!(parse_listen_counters("").is_err());
    }

    #[test]
    fn listen_counters_since_are_the_growth_and_never_negative() {
        let before = ListenCounters {
            overflows: 10,
            drops: 12,
        };
        let after = ListenCounters {
            overflows: 250,
            drops: 251,
        };
        assert_eq!(
            before.since(after),
            ListenCounters {
                overflows: 240,
                drops: 239
            }
        );
        // A counter reset (another namespace, a wrap) reads as nothing, not as a huge number.
        assert_eq!(after.since(before), ListenCounters::default());
    }

    #[test]
    fn this_process_can_be_read() {
        let me = proc_stats("self").ok();
        assert!(me.is_some_and(|s| s.rss > 0 && s.peak_rss >= s.rss));
    }
}
