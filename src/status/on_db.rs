//! The page's figures from the database (`DATABASE`): the profiles and
//! installs left, the CMDBs and who holds what, the nodes' newest
//! hardware lists, and a problem when servers decided one profile with
//! different files.

use super::{cmdb_status, Holdings, Node, NodeIndex, Placed, Problem, Read};
use crate::config::ServerConfig;
use crate::db::{self, store};
use crate::hw;
use crate::state::{Entry, State};

fn problem(problems: &mut Vec<Problem>, part: &'static str, message: String) {
    problems.push(Problem { part, message });
}

/// What [`super::read_files`] reads, from the database; `"database"` for
/// how it was read (one snapshot, no file lock); and the connection, kept
/// open for the page's previews (none when the database could not be
/// read).
pub(super) fn read(cfg: &ServerConfig, problems: &mut Vec<Problem>) -> (Read, Option<db::Db>) {
    let empty = || {
        (
            ("database", None, Vec::new(), Vec::new(), Holdings::new()),
            None,
        )
    };
    let url = cfg.database.as_deref().unwrap_or_default();
    let mut d = match db::connect(url, &cfg.section).and_then(|mut d| {
        db::check_schema(&mut d)?;
        Ok(d)
    }) {
        Ok(d) => d,
        Err(e) => {
            problem(problems, "profiles", format!("{e:#}"));
            return empty();
        }
    };
    let section = cfg.section.clone();
    let snapshot = (|| -> anyhow::Result<_> {
        let mut tx = d.snapshot()?;
        let profiles = store::profiles(&mut tx, &section)?;
        let hw = store::hw_lists(&mut tx, &section)?;
        let cmdbs = store::cmdbs(&mut tx, &section)?;
        let apart = store::disagreements(&mut tx, &section)?;
        tx.commit()?;
        Ok((profiles, hw, cmdbs, apart))
    })();
    let (profiles, hw_lists, cmdbs, apart) = match snapshot {
        Ok(s) => s,
        Err(e) => {
            problem(
                problems,
                "profiles",
                format!("{}: {e:#}", db::url::shown(url)),
            );
            return empty();
        }
    };
    for (profile, servers) in apart {
        let list: Vec<String> = servers
            .iter()
            .map(|(s, h)| format!("{s} {}", &h[..h.len().min(12)]))
            .collect();
        problem(
            problems,
            "profiles",
            format!(
                "profile {profile}: servers decided with different .specs or configure files \
                 in the last day ({})",
                list.join(", ")
            ),
        );
    }
    let state = State {
        entries: profiles
            .iter()
            .map(|p| Entry::new(p.profile.clone(), p.left))
            .collect(),
        dialect: crate::literal::Dialect::Python,
    };
    let nodes: Vec<Node> = hw_lists
        .into_iter()
        .map(|(sysname, modified, text)| Node {
            file: format!("{sysname}.hw"),
            lines: hw::parse(&text, &format!("the hardware list of {sysname}"))
                .map_err(|e| e.to_string()),
            sysname,
            modified,
        })
        .collect();
    let index = NodeIndex::new(&nodes);
    let mut holdings = Holdings::new();
    let statuses = cmdbs
        .into_iter()
        .enumerate()
        .map(|(ci, (profile, entries))| {
            let in_state = profiles.iter().any(|p| p.profile == profile);
            let at = Placed {
                nodes: &nodes,
                index: &index,
                ci,
            };
            cmdb_status(profile, in_state, Ok(entries), &at, &mut holdings, problems)
        })
        .collect();
    (
        ("database", Some(state), nodes, statuses, holdings),
        Some(d),
    )
}
