//! rsync-style exclude rules, for the work rsync does not do for us.
//!
//! The rsync transport hands an upgrade path's `exclude` file straight to
//! `rsync --exclude-from`. The offline `verify` and the HTTP delta apply
//! must honour the very same file without rsync, so this module reads it
//! the way rsync does (the subset eDeploy operators use):
//!
//! - blank lines and lines starting with `#` or `;` are ignored;
//! - `- PATTERN` excludes, `+ PATTERN` includes, a bare line excludes;
//! - the first rule that matches a name decides;
//! - a leading `/` anchors the pattern at the tree's root; a trailing `/`
//!   matches directories only; a pattern with a `/` inside (or `**`) is
//!   matched against the whole path, otherwise against the last
//!   component, at any depth;
//! - `*` and `?` stop at `/`, `**` does not, `[...]` is a character class;
//! - an excluded directory hides everything below it (rsync never looks
//!   inside), so a path is excluded when it or one of its parents is.

/// One rule of an exclude file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    include: bool,
    pattern: String,
    anchored: bool,
    dir_only: bool,
    whole_path: bool,
}

/// An ordered list of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// Paths a running host owns that no upgrade may touch: kernel
/// filesystems, scratch space and eDeploy's own state. Passed to rsync
/// before the operator's exclude file, so they win over its `+` lines.
pub const BUILTIN: &[&str] = &["/proc", "/sys", "/dev", "/run", "/tmp", "/var/lib/edeploy"];

/// Files `edeploy` itself rewrites on the host (the role and version line
/// of `/etc/motd`): ignored by `verify`, never by upgrades.
pub const VERIFY_IGNORED: &[&str] = &["/etc/motd"];

impl Rules {
    /// Reads the text of an exclude file.
    pub fn parse(text: &str) -> Rules {
        let mut r = Rules::default();
        for line in text.lines() {
            r.push_line(line);
        }
        r
    }

    /// Rules excluding exactly these patterns.
    pub fn excluding<S: AsRef<str>>(patterns: &[S]) -> Rules {
        let mut r = Rules::default();
        for p in patterns {
            r.push(false, p.as_ref());
        }
        r
    }

    /// Appends the rules of another list (they match after ours).
    pub fn extend(&mut self, other: &Rules) {
        self.rules.extend(other.rules.iter().cloned());
    }

    fn push_line(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with(';') {
            return;
        }
        if let Some(p) = line.strip_prefix("- ") {
            self.push(false, p);
        } else if let Some(p) = line.strip_prefix("+ ") {
            self.push(true, p);
        } else {
            self.push(false, line);
        }
    }

    fn push(&mut self, include: bool, pattern: &str) {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return;
        }
        let anchored = pattern.starts_with('/');
        let dir_only = pattern.len() > 1 && pattern.ends_with('/');
        let p = pattern.trim_start_matches('/').trim_end_matches('/');
        if p.is_empty() {
            return;
        }
        self.rules.push(Rule {
            include,
            whole_path: anchored || p.contains('/') || p.contains("**"),
            pattern: p.to_string(),
            anchored,
            dir_only,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative to the tree's root, `/`-separated, with or
    /// without a leading `/`) is excluded, itself or through a parent.
    pub fn excludes(&self, path: &str, is_dir: bool) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        let path = path.trim_start_matches('/').trim_end_matches('/');
        if path.is_empty() {
            return false;
        }
        let mut end = 0;
        loop {
            let next = path[end..].find('/').map(|i| end + i);
            let prefix = match next {
                Some(i) => &path[..i],
                None => path,
            };
            let prefix_is_dir = next.is_some() || is_dir;
            if let Some(rule) = self.first_match(prefix, prefix_is_dir) {
                if !rule.include {
                    return true;
                }
            }
            match next {
                Some(i) => end = i + 1,
                None => return false,
            }
        }
    }

    fn first_match(&self, path: &str, is_dir: bool) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(path, is_dir))
    }
}

impl Rule {
    fn matches(&self, path: &str, is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        // `dir/***` means the directory and everything in it.
        if let Some(base) = self.pattern.strip_suffix("/***") {
            let r = Rule {
                pattern: base.to_string(),
                dir_only: false,
                ..self.clone()
            };
            return r.matches(path, is_dir);
        }
        if self.anchored {
            return glob(self.pattern.as_bytes(), path.as_bytes());
        }
        if self.whole_path {
            // Unanchored: the pattern may match any tail of the path that
            // starts at a component.
            let mut start = 0;
            loop {
                if glob(self.pattern.as_bytes(), &path.as_bytes()[start..]) {
                    return true;
                }
                match path[start..].find('/') {
                    Some(i) => start += i + 1,
                    None => return false,
                }
            }
        }
        let last = path.rsplit('/').next().unwrap_or(path);
        glob(self.pattern.as_bytes(), last.as_bytes())
    }
}

/// Shell-style matching of a whole string: `*` and `?` do not cross `/`,
/// `**` does, `[...]` (with `!` or `^` negation and ranges) is a class.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => {
            if p.get(1) == Some(&b'*') {
                let rest = &p[2..];
                (0..=s.len()).any(|i| glob(rest, &s[i..]))
            } else {
                let rest = &p[1..];
                let mut i = 0;
                loop {
                    if glob(rest, &s[i..]) {
                        return true;
                    }
                    if i == s.len() || s[i] == b'/' {
                        return false;
                    }
                    i += 1;
                }
            }
        }
        Some(b'?') => !s.is_empty() && s[0] != b'/' && glob(&p[1..], &s[1..]),
        Some(b'[') => match (class(&p[1..], s.first().copied()), s.is_empty()) {
            (Some((true, used)), false) => glob(&p[1 + used..], &s[1..]),
            (Some(_), _) => false,
            // An unclosed `[` is a plain character.
            (None, _) => !s.is_empty() && s[0] == b'[' && glob(&p[1..], &s[1..]),
        },
        Some(b'\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && glob(&p[2..], &s[1..]),
        Some(&c) => !s.is_empty() && s[0] == c && glob(&p[1..], &s[1..]),
    }
}

/// Matches `c` against the class starting after `[`; returns whether it
/// matched and how many pattern bytes the class used (with its `]`).
fn class(p: &[u8], c: Option<u8>) -> Option<(bool, usize)> {
    let c = c.unwrap_or(0);
    let mut i = 0;
    let negate = matches!(p.first(), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((matched != negate && c != b'/', i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// An exclude file decides what a manifest scan leaves out.
impl crate::archive::manifest::Skip for Rules {
    fn excludes(&self, path: &str, is_dir: bool) -> bool {
        Rules::excludes(self, path, is_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_pattern_forms() {
        let r = Rules::parse(
            "# data\n/var/lib/mysql\n*.pyc\netc/ssh/ssh_host_*\ncache/\n; comment\n+ /srv/\n+ /srv/keep\n- /srv/*\n/home/***\n",
        );
        assert!(r.excludes("/var/lib/mysql", true));
        assert!(r.excludes("var/lib/mysql/ibdata1", false));
        assert!(!r.excludes("opt/var/lib/mysql", true), "anchored");
        assert!(r.excludes("usr/lib/python/x.pyc", false));
        assert!(r.excludes("etc/ssh/ssh_host_rsa_key", false));
        assert!(r.excludes("chroot/etc/ssh/ssh_host_rsa_key", false));
        assert!(!r.excludes("etc/ssh/sshd_config", false));
        assert!(
            r.excludes("var/cache/x", false),
            "a dir-only rule hides contents"
        );
        assert!(
            !r.excludes("var/cache", false),
            "but not a file of that name"
        );
        assert!(!r.excludes("srv/keep", false), "first match wins");
        assert!(r.excludes("srv/other", false));
        assert!(r.excludes("home", true));
        assert!(r.excludes("home/a/b", false));
        assert!(!r.excludes("etc/passwd", false));
    }

    #[test]
    fn globs() {
        assert!(glob(b"a*c", b"abbc"));
        assert!(!glob(b"a*c", b"ab/c"));
        assert!(glob(b"a**c", b"ab/c"));
        assert!(glob(b"f[0-9]", b"f7"));
        assert!(!glob(b"f[!0-9]", b"f7"));
        assert!(glob(b"f?o", b"foo"));
        assert!(glob(b"[x", b"[x"));
    }

    #[test]
    fn builtin_state_dir() {
        let r = Rules::excluding(BUILTIN);
        assert!(r.excludes("var/lib/edeploy/conf", false));
        assert!(r.excludes("proc", true));
        assert!(!r.excludes("var/lib/dpkg/status", false));
    }
}
