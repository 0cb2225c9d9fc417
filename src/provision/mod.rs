//! What a node's hardware upload leads to, shared by `upload.cgi` and the
//! installer's embedded mode (`EMBEDDED=`): the list kept in HWDIR, the
//! decision ([`decide`]), the node registered with pxemngr; and the
//! install logs nodes send ([`logs`]).

pub mod decide;
pub mod logs;

use crate::cgi::{Reject, RequestLog};
use crate::config::ServerConfig;
use crate::exec::{CmdLine, Exec, System};
use crate::hw::{self, Line};
use crate::state::Count;
use decide::Decision;

/// Parses an uploaded hardware list (JSON or the literal dialect) and
/// checks it against `limits` (lines, bytes per string, no control
/// characters: [`hw::check`]); every refusal is a 400 naming the limit,
/// and the line and position for a string.
pub fn parse_hw(data: &[u8], limits: &hw::Limits) -> Result<Vec<Line>, Reject> {
    let text = std::str::from_utf8(data)
        .map_err(|e| Reject::bad(format!("the hardware list is not valid UTF-8 ({e})")))?;
    let lines = hw::parse(text, "the uploaded hardware list")
        .map_err(|e| Reject::bad(format!("bad hardware list: {e}")))?;
    if lines.is_empty() {
        return Err(Reject::bad("the hardware list is empty"));
    }
    hw::check(&lines, limits).map_err(|e| Reject::bad(e.to_string()))?;
    Ok(lines)
}

/// What a hardware upload led to.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioned {
    pub decision: Decision,
    pub sysname: String,
    /// The closing log line's text.
    pub reason: String,
}

/// A node asks for its configuration: keep its hardware list as
/// `HWDIR/<sysname>.hw`, decide (committing), register it with pxemngr.
/// `only` restricts the decision to one profile (`upload.cgi --only`).
pub fn provision(
    cfg: &ServerConfig,
    lines: &[Line],
    only: Option<&str>,
    log: &mut RequestLog<'_>,
) -> Result<Provisioned, Reject> {
    let sysname = hw::sysname(lines);
    // `HWDIR/<sysname>.hw` is written in the decision's commit (or alone,
    // under the same lock, when there is no decision to commit). Its name
    // fits a file name by construction (`hw::sysname` cuts it), and the
    // commit checks every target's name before anything is committed.
    let path = cfg.hwdir.join(format!("{sysname}.hw"));
    let keep = (path, hw::to_literal(lines).into_bytes());
    let mut warnings = Vec::new();
    let result = decide::decide_keeping(cfg, lines, only, Some(keep), &mut |w| warnings.push(w));
    for w in &warnings {
        log.warning(w);
    }
    let decision = result.map_err(|e| {
        let r = Reject::from(e);
        Reject::new(r.status, format!("{sysname}: {}", r.sentence))
    })?;
    if cfg.use_pxemngr {
        // The node is provisioned either way; a missing PXE entry is for
        // the operator to fix, not a reason to fail the install.
        if let Err(e) = pxemngr_addsystem(cfg, &System::default(), &sysname, lines) {
            log.warning(&format!("pxemngr failed: {e:#}"));
        }
    }
    let entry = match decision.cmdb_entry {
        Some(i) if decision.reused => format!(", CMDB entry {} (already this node's)", i + 1),
        Some(i) => format!(", CMDB entry {}", i + 1),
        None => String::new(),
    };
    let left = match decision.left {
        Count::Unlimited => "unlimited".to_string(),
        Count::Left(n) => n.to_string(),
    };
    let reason = format!(
        "{sysname}: profile {}{entry}, installs left {left}",
        decision.profile
    );
    Ok(Provisioned {
        decision,
        sysname,
        reason,
    })
}

/// `<PXEMNGR> addsystem <sysname> <MAC>…`, with the node's Ethernet MACs
/// only (the 17-character `xx:xx:xx:xx:xx:xx` ones; pxemngr knows nothing
/// of InfiniBand's 20-byte addresses), in list order.
pub fn pxemngr_addsystem(
    cfg: &ServerConfig,
    exec: &dyn Exec,
    sysname: &str,
    lines: &[Line],
) -> anyhow::Result<()> {
    let mut argv = vec![
        cfg.pxemngr.to_string_lossy().into_owned(),
        "addsystem".to_string(),
        sysname.to_string(),
    ];
    argv.extend(
        hw::macs(lines)
            .into_iter()
            .filter(|m| is_ethernet_mac(m))
            .map(String::from),
    );
    exec.run(&CmdLine::Argv(argv))?;
    Ok(())
}

/// Whether `mac` is an Ethernet address written `xx:xx:xx:xx:xx:xx`.
fn is_ethernet_mac(mac: &str) -> bool {
    let b = mac.as_bytes();
    b.len() == 17
        && b.iter().enumerate().all(|(i, &c)| {
            if i % 3 == 2 {
                c == b':'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::is_ethernet_mac;

    #[test]
    fn only_ethernet_addresses_go_to_pxemngr() {
        for good in ["52:54:12:34:00:03", "D8:9D:67:1A:D0:FC"] {
            assert!(is_ethernet_mac(good), "{good}");
        }
        for bad in [
            "a0:00:02:20:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0d:1c:51",
            "52-54-12-34-00-03",
            "52:54:12:34:00:0g",
            "52:54:12:34:00",
            "",
        ] {
            assert!(!is_ethernet_mac(bad), "{bad}");
        }
    }
}
