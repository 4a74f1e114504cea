//! Host budget: do the services' memory limits and reservations fit the
//! host? Hard limits adding up to more than the host has is a warning
//! (they are ceilings, not all reached at once); reservations adding up to
//! more is an error, since the host cannot honour them.

use crate::spec::SpecSet;

/// The host's capacity, from agent.toml `[host]` or the machine itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Host {
    pub memory: u64,
    pub cpus: f64,
}

impl Host {
    /// `[host]` values where given, else this machine's RAM (MemTotal) and cores.
    pub fn detect(memory: Option<u64>, cpus: Option<f64>) -> Host {
        Host {
            memory: memory.or_else(mem_total).unwrap_or(u64::MAX),
            cpus: cpus.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as f64)
                    .unwrap_or(1.0)
            }),
        }
    }
}

fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// Human size: 1024-based, one decimal where it matters ("580.0M").
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ];
    for (u, m) in UNITS {
        if bytes >= m {
            let v = bytes as f64 / m as f64;
            return if (v.fract()).abs() < 0.05 {
                format!("{v:.0}{u}")
            } else {
                format!("{v:.1}{u}")
            };
        }
    }
    format!("{bytes}B")
}

fn listing(items: &[(&str, u64)]) -> String {
    items
        .iter()
        .map(|(n, b)| format!("{n} {}", human(*b)))
        .collect::<Vec<_>>()
        .join(" + ")
}

pub fn check(set: &SpecSet, host: Host) -> Verdict {
    let mut v = Verdict::default();
    let limits: Vec<(&str, u64)> = set
        .containers
        .values()
        .filter_map(|c| c.resources.memory.map(|m| (c.name.as_str(), m)))
        .collect();
    let reservations: Vec<(&str, u64)> = set
        .containers
        .values()
        .filter_map(|c| c.resources.memory_reservation.map(|m| (c.name.as_str(), m)))
        .collect();
    let total_limits: u64 = limits.iter().map(|(_, b)| b).sum();
    let total_res: u64 = reservations.iter().map(|(_, b)| b).sum();
    if total_res > host.memory {
        v.errors.push(format!(
            "memory reservations add up to {} ({}), more than the host's {}: the host cannot honour them",
            human(total_res),
            listing(&reservations),
            human(host.memory)
        ));
    }
    if total_limits > host.memory {
        v.warnings.push(format!(
            "hard memory limits add up to {} ({}), more than the host's {}: if all services reach their limits the host runs out of memory",
            human(total_limits),
            listing(&limits),
            human(host.memory)
        ));
    }
    let unlimited: Vec<&str> = set
        .containers
        .values()
        .filter(|c| c.resources.memory.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !unlimited.is_empty() && total_limits > 0 {
        v.warnings.push(format!(
            "{} have no memory limit and are not counted in the total",
            unlimited.join(", ")
        ));
    }
    let total_cpus: f64 = set
        .containers
        .values()
        .filter_map(|c| c.resources.cpus)
        .sum();
    if total_cpus > host.cpus + 1e-9 {
        v.warnings.push(format!(
            "CPU quotas add up to {total_cpus} cores, more than the host's {}: services will share them",
            host.cpus
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn set(text: &str) -> SpecSet {
        crate::spec::load_texts(&[(PathBuf::from("a.toml"), text.into())]).unwrap()
    }

    const STACK: &str = "[container.db]\nimage = \"x\"\n[container.db.resources]\nmemory = \"200M\"\nmemory_reservation = \"150M\"\ncpus = 1.0\n\
[container.web]\nimage = \"x\"\n[container.web.resources]\nmemory = \"300M\"\nmemory_reservation = \"120M\"\ncpus = 1.5\n\
[container.cache]\nimage = \"x\"\n[container.cache.resources]\nmemory = \"80M\"\n";

    #[test]
    fn over_committed_limits_warn_with_totals() {
        // 580M of limits on a 512M host: the case that once shipped unnoticed.
        let v = check(
            &set(STACK),
            Host {
                memory: 512 << 20,
                cpus: 4.0,
            },
        );
        assert!(v.errors.is_empty(), "{v:?}");
        assert_eq!(
            v.warnings,
            ["hard memory limits add up to 580M (cache 80M + db 200M + web 300M), more than the host's 512M: if all services reach their limits the host runs out of memory"]
        );
    }

    #[test]
    fn reservations_over_the_host_are_errors() {
        let v = check(
            &set(STACK),
            Host {
                memory: 256 << 20,
                cpus: 2.0,
            },
        );
        assert_eq!(
            v.errors,
            ["memory reservations add up to 270M (db 150M + web 120M), more than the host's 256M: the host cannot honour them"]
        );
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("CPU quotas add up to 2.5 cores, more than the host's 2")),
            "{v:?}"
        );
    }

    #[test]
    fn fitting_stack_is_quiet() {
        let v = check(
            &set(STACK),
            Host {
                memory: 1 << 30,
                cpus: 4.0,
            },
        );
        assert_eq!(v, Verdict::default());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(580 << 20), "580M");
        assert_eq!(human(1536 << 20), "1.5G");
        assert_eq!(human(512), "512B");
    }
}
