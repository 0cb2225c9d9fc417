//! The profiles as a decision on the database walks them, and the copy of
//! that list a server keeps in CONFIGDIR (`.edeploy-profiles`), which
//! spares a decision the statement that reads it.
//!
//! The walk needs, of each profile before the one it takes from, only
//! its name, whether it has a CMDB and whether it has installs left: that
//! is what lets a profile be passed over before its lock. The lock's
//! statement reads every profile again, and the decision stands only when
//! those before it, and the profile itself, are as the walk saw them
//! ([`same_before`]). A list that was not read in this request (the kept
//! copy) therefore never changes an answer: when it is out of date, the
//! walk starts again from the database, and when it leads to no answer
//! at all (no profile matched, or an error), the walk is made again on
//! the database before anything is answered.

use crate::db::store::Profile;
use crate::state::{is_profile_name, Count};
use std::path::PathBuf;

/// A profile as the walk sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub profile: String,
    pub has_cmdb: bool,
    /// No installs left.
    pub exhausted: bool,
}

impl From<&Profile> for Listed {
    fn from(p: &Profile) -> Listed {
        Listed {
            profile: p.profile.clone(),
            has_cmdb: p.has_cmdb,
            exhausted: p.left == Count::Left(0),
        }
    }
}

/// `profiles` as the walk sees them.
pub fn listed(profiles: &[Profile]) -> Vec<Listed> {
    profiles.iter().map(Listed::from).collect()
}

/// Whether `now` (read under the lock of `this`, the profile at
/// `before.len()`) begins with `before` and then `this` as the walk saw
/// them: then no profile the walk passed over could now let the node in
/// first, and `this` still has (or still has not) a CMDB.
pub fn same_before(now: &[Profile], before: &[Listed], this: &Listed) -> bool {
    now.len() > before.len()
        && now.iter().zip(before).all(|(n, b)| Listed::from(n) == *b)
        && now[before.len()].profile == this.profile
        && now[before.len()].has_cmdb == this.has_cmdb
}

/// The kept list's file, in CONFIGDIR.
pub fn path(configdir: &std::path::Path) -> PathBuf {
    configdir.join(".edeploy-profiles")
}

const MAGIC: &str = "edeploy-profiles 1";

/// The most bytes a kept list is read from.
pub const MOST: usize = 1 << 20;

/// The kept list's text: a head line, the section, then a line per
/// profile (`c` or `-` for its CMDB, `0` or `+` for its installs, its
/// name), then the CRC-32 of all before it, in hex.
pub fn to_text(section: &str, list: &[Listed]) -> String {
    let mut text = format!("{MAGIC}\n{section}\n");
    for l in list {
        text.push(if l.has_cmdb { 'c' } else { '-' });
        text.push(if l.exhausted { '0' } else { '+' });
        text.push(' ');
        text.push_str(&l.profile);
        text.push('\n');
    }
    let crc = crc32fast::hash(text.as_bytes());
    text.push_str(&format!("{crc:08x}\n"));
    text
}

/// The list `bytes` holds for `section`: `None` when it is not one
/// ([`to_text`]), is torn, fails its CRC, is another section's, or names
/// a profile the state could not hold.
pub fn from_text(bytes: &[u8], section: &str) -> Option<Vec<Listed>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body_end = text.strip_suffix('\n')?.rfind('\n')? + 1;
    let (body, crc) = text.split_at(body_end);
    let crc = u32::from_str_radix(crc.strip_suffix('\n')?, 16).ok()?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return None;
    }
    let mut lines = body.lines();
    if lines.next()? != MAGIC || lines.next()? != section {
        return None;
    }
    lines
        .map(|line| {
            let b = line.as_bytes();
            let (has_cmdb, exhausted) = match (b.first()?, b.get(1)?, b.get(2)?) {
                (c, e, b' ') => (
                    match c {
                        b'c' => true,
                        b'-' => false,
                        _ => return None,
                    },
                    match e {
                        b'0' => true,
                        b'+' => false,
                        _ => return None,
                    },
                ),
                _ => return None,
            };
            let profile = line.get(3..)?;
            is_profile_name(profile).then(|| Listed {
                profile: profile.to_string(),
                has_cmdb,
                exhausted,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(profile: &str, has_cmdb: bool, exhausted: bool) -> Listed {
        Listed {
            profile: profile.into(),
            has_cmdb,
            exhausted,
        }
    }

    #[test]
    fn a_kept_list_reads_back_only_whole_and_for_its_section() {
        let list = vec![l("vm", true, false), l("hp-1.2", false, true)];
        let text = to_text("SERVER", &list);
        assert_eq!(from_text(text.as_bytes(), "SERVER"), Some(list.clone()));
        assert_eq!(from_text(to_text("S", &[]).as_bytes(), "S"), Some(vec![]));
        assert_eq!(from_text(text.as_bytes(), "lab"), None);
        for cut in 0..text.len() {
            assert_eq!(from_text(&text.as_bytes()[..cut], "SERVER"), None, "{cut}");
        }
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] ^= 0x04;
            assert_eq!(from_text(&b, "SERVER"), None, "byte {i}");
        }
    }

    #[test]
    fn a_kept_list_with_a_name_the_state_refuses_is_not_used() {
        for bad in ["../x", "", ".hidden", "a/b", "a b"] {
            let text = to_text("SERVER", &[l(bad, false, false)]);
            assert_eq!(from_text(text.as_bytes(), "SERVER"), None, "{bad:?}");
        }
    }

    #[test]
    fn only_a_list_that_begins_as_the_walk_saw_it_lets_the_decision_stand() {
        let p = |name: &str, left: Count, has_cmdb: bool| Profile {
            profile: name.into(),
            left,
            has_cmdb,
        };
        let now = vec![
            p("a", Count::Left(0), false),
            p("b", Count::Left(7), true),
            p("c", Count::Unlimited, false),
        ];
        let before = vec![l("a", false, true)];
        assert!(same_before(&now, &before, &l("b", true, false)));
        // Its own count is read under the lock: not compared.
        assert!(same_before(&now, &before, &l("b", true, true)));
        assert!(!same_before(&now, &before, &l("b", false, false)));
        assert!(!same_before(&now, &before, &l("c", false, false)));
        assert!(!same_before(
            &now,
            &[l("a", false, false)],
            &l("b", true, false)
        ));
        assert!(!same_before(
            &now,
            &[l("a", true, true)],
            &l("b", true, false)
        ));
        assert!(!same_before(&now[..1], &before, &l("b", true, false)));
        // A count that changes but stays above zero passes nobody over.
        let mut later = now.clone();
        later[0].left = Count::Left(0);
        later[1].left = Count::Left(3);
        assert!(same_before(
            &later,
            &[l("a", false, true), l("b", true, false)],
            &l("c", false, false)
        ));
    }
}
