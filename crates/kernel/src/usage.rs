//! What this process itself costs, as the kernel accounts it: CPU time from
//! `/proc/self/stat`, resident memory from `/proc/self/statm`. Read only; for the daemon's
//! own metrics and the benchmarks.

/// CPU time (user and system) used by this process so far, in seconds; 0 if unreadable.
pub fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which may hold spaces: state is field 3,
            // utime and stime fields 14 and 15.
            let rest = s.get(s.rfind(')')? + 2..)?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
        })
        .unwrap_or(0.0)
}

/// This process's resident memory, in bytes; 0 if unreadable.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * rustix::param::page_size() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_accounted() {
        assert!(super::resident_bytes() > 0);
        assert!(super::cpu_seconds() >= 0.0);
    }
}
