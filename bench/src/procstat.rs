//! CPU time and peak memory of a process and all its descendants, from `/proc` (Linux). A
//! server started through a wrapper script (RabbitMQ's `rabbitmq-server` runs `erl` as a child)
//! is measured as the whole tree under the process the benchmark started.

use std::collections::HashMap;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// What one `/proc/{pid}/stat` line says: parent, and user + system CPU ticks (own and reaped
/// children's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    pub ticks: u64,
}

/// Parses a `/proc/{pid}/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some(Stat {
        ppid: field(4)? as u32,
        ticks: field(14)? + field(15)? + field(16)? + field(17)?,
    })
}

/// `VmHWM` (peak resident set) of a `/proc/{pid}/status` text, in KiB.
pub fn parse_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and every process descending from it, given each process's parent.
pub fn descendants(root: u32, parents: &HashMap<u32, u32>) -> Vec<u32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(
            parents
                .iter()
                .filter(|&(&c, &pp)| pp == p && c != p)
                .map(|(&c, _)| c),
        );
        i += 1;
    }
    out
}

/// The tree's resources now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU seconds (user + system) of every live process of the tree and its reaped children.
    pub cpu_s: f64,
    /// Sum of the processes' peak resident sets, MiB.
    pub peak_rss_mib: f64,
    pub processes: usize,
}

fn all_stats() -> HashMap<u32, Stat> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(s) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|l| parse_stat(&l))
        {
            out.insert(pid, s);
        }
    }
    out
}

/// CPU and peak memory of `root` and its descendants (None if `root` is gone).
pub fn tree_usage(root: u32) -> Option<Usage> {
    let stats = all_stats();
    stats.get(&root)?;
    let parents: HashMap<u32, u32> = stats.iter().map(|(&p, s)| (p, s.ppid)).collect();
    let mut u = Usage::default();
    for pid in descendants(root, &parents) {
        u.processes += 1;
        u.cpu_s += stats[&pid].ticks as f64 / TICKS_PER_SECOND;
        if let Some(kib) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| parse_hwm_kib(&s))
        {
            u.peak_rss_mib += kib as f64 / 1024.0;
        }
    }
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_and_parentheses_in_the_name() {
        let line = "4242 (beam.smp (x) y) S 4200 4242 4242 0 -1 4194560 1000 0 0 0 \
                    150 50 7 3 20 0 30 0 12345 1000000 2000 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 4200,
                ticks: 150 + 50 + 7 + 3
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn hwm_from_status() {
        let s = "Name:\tredis-server\nVmPeak:\t  9000 kB\nVmHWM:\t    8124 kB\nVmRSS:\t 8000 kB\n";
        assert_eq!(parse_hwm_kib(s), Some(8124));
        assert_eq!(parse_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn descendants_of_a_tree() {
        let parents: HashMap<u32, u32> = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 10),
            (13, 11),
            (20, 1),
            (21, 99),
        ]
        .into_iter()
        .collect();
        let mut d = descendants(10, &parents);
        d.sort();
        assert_eq!(d, vec![10, 11, 12, 13]);
        assert_eq!(descendants(21, &parents), vec![21]);
    }

    #[test]
    fn this_process_is_measured() {
        let u = tree_usage(std::process::id()).expect("own /proc entry");
        assert!(u.processes >= 1);
        assert!(u.peak_rss_mib > 0.0);
    }
}
