//! `('hw','auxv', key, value)`: the ELF auxiliary vector entries
//! `hardware-detect` reports, as the dynamic loader prints them for
//! `LD_SHOW_AUXV=1 /bin/true`.
//!
//! The loader knows how to name each entry on each architecture
//! (`hwcap` is a hexadecimal number on x86, a list of words on POWER), so
//! its output is taken as it is. A statically linked `/bin/true` (the
//! installer's busybox) prints nothing, and there are then no lines.

use super::{line, run};
use crate::exec::Exec;
use crate::hw::Line;

/// The entries reported, in the names the loader prints.
const KEYS: [&str; 6] = [
    "AT_HWCAP",
    "AT_HWCAP2",
    "AT_PAGESZ",
    "AT_FLAGS",
    "AT_PLATFORM",
    "AT_BASE_PLATFORM",
];

/// The lines from the loader's output (`AT_HWCAP:   1f8bfbff`), in its
/// order; the key is the name without `AT_`, lower case.
pub fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            if !KEYS.contains(&k) {
                return None;
            }
            let key = k.trim_start_matches("AT_").to_ascii_lowercase();
            Some(line("hw", "auxv", &key, v.trim()))
        })
        .collect()
}

/// The lines of this machine: `env LD_SHOW_AUXV=1 /bin/true`.
pub fn auxv(exec: &dyn Exec) -> Vec<Line> {
    run(exec, &["env", "LD_SHOW_AUXV=1", "/bin/true"])
        .filter(|o| o.success())
        .map(|o| parse(&o.stdout))
        .unwrap_or_default()
}
