//! Reading what rsync prints: `--itemize-changes` lines and
//! `--list-only` listings. Pure functions, tested on captured output.

/// What happens to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The source has it, the destination does not.
    New,
    /// The destination has it, the source does not.
    Deleted,
    /// Both have it; these attributes differ (`content`, `type`, `mtime`,
    /// `mode`, `owner`, `group`, `acl`, `xattr`, `link target`; `sent`
    /// when rsync transfers the file on size or mtime alone).
    Changed(Vec<&'static str>),
}

/// One itemized line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub is_dir: bool,
    pub what: What,
}

impl Change {
    /// True when only the times differ (noise for directories).
    pub fn times_only(&self) -> bool {
        matches!(&self.what, What::Changed(a) if a.iter().all(|x| *x == "mtime"))
    }

    /// True when the file's bytes (or its kind) differ.
    pub fn content(&self) -> bool {
        matches!(&self.what, What::Changed(a) if a.contains(&"content") || a.contains(&"sent") || a.contains(&"link target"))
    }
}

/// Parses the output of `rsync -i` (`%i %n%L`). Lines that are not
/// itemized changes (messages, the summary) are skipped.
pub fn parse_itemized(out: &str) -> Vec<Change> {
    out.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Change> {
    if let Some(rest) = line.strip_prefix("*deleting") {
        let path = rest.trim_start();
        return Some(Change {
            is_dir: path.ends_with('/'),
            path: path.trim_end_matches('/').to_string(),
            what: What::Deleted,
        });
    }
    let b = line.as_bytes();
    if b.len() < 13 || b[11] != b' ' || !line.is_char_boundary(12) {
        return None;
    }
    if !b"<>ch.".contains(&b[0]) || !b"fdLDS".contains(&b[1]) {
        return None;
    }
    let code = &line[..11];
    let mut path = &line[12..];
    if b[1] == b'L' {
        if let Some(i) = path.find(" -> ") {
            path = &path[..i];
        }
    }
    if b[0] == b'h' {
        if let Some(i) = path.find(" => ") {
            path = &path[..i];
        }
    }
    let is_dir = b[1] == b'd';
    let path = path.trim_end_matches('/').to_string();
    let flags = &code[2..];
    if flags.chars().all(|c| c == '+') {
        return Some(Change {
            path,
            is_dir,
            what: What::New,
        });
    }
    let mut attrs = Vec::new();
    let f = flags.as_bytes();
    if f[0] == b'c' {
        attrs.push(if b[1] == b'L' {
            "link target"
        } else {
            "content"
        });
    }
    if f[1] == b's' && !attrs.contains(&"content") {
        attrs.push("content");
    }
    // Without `--checksum` rsync sends a file whose size or mtime differ
    // without knowing whether its bytes do: say it is sent.
    if (b[0] == b'>' || b[0] == b'<') && attrs.is_empty() {
        attrs.push("sent");
    }
    if f[2] == b't' || f[2] == b'T' {
        attrs.push("mtime");
    }
    if f[3] == b'p' {
        attrs.push("mode");
    }
    if f[4] == b'o' {
        attrs.push("owner");
    }
    if f[5] == b'g' {
        attrs.push("group");
    }
    if f.get(7) == Some(&b'a') {
        attrs.push("acl");
    }
    if f.get(8) == Some(&b'x') {
        attrs.push("xattr");
    }
    if attrs.is_empty() {
        // `.f         ` style lines (`-ii`) say nothing changed.
        return None;
    }
    Some(Change {
        path,
        is_dir,
        what: What::Changed(attrs),
    })
}

/// The directory names of an `rsync --list-only` listing (without `.`).
pub fn parse_listing_dirs(out: &str) -> Vec<String> {
    let mut dirs: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with('d'))
        .filter_map(|l| {
            // perms size date time name: the name is the rest after four
            // fields, so it may hold spaces.
            let mut rest = l;
            for _ in 0..4 {
                rest = rest.trim_start();
                let i = rest.find(char::is_whitespace)?;
                rest = &rest[i..];
            }
            let name = rest.trim_start();
            (!name.is_empty() && name != ".").then(|| name.to_string())
        })
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itemized_lines_from_rsync_3() {
        let out = "\
*deleting   etc/old.conf
*deleting   olddir/
.d..t...... etc/
>f.st...... etc/hosts
>f+++++++++ usr/bin/new
cd+++++++++ usr/share/newdir/
cL+++++++++ lib/libx.so -> libx.so.2
cLc.t...... lib/liby.so -> liby.so.3
.f...po.... etc/shadow
>fc........ etc/same-size
skipping non-regular file \"x\"
";
        let c = parse_itemized(out);
        let short: Vec<(String, String)> = c
            .iter()
            .map(|c| (c.path.clone(), format!("{:?}", c.what)))
            .collect();
        assert_eq!(
            short,
            vec![
                ("etc/old.conf".into(), "Deleted".into()),
                ("olddir".into(), "Deleted".into()),
                ("etc".into(), "Changed([\"mtime\"])".into()),
                (
                    "etc/hosts".into(),
                    "Changed([\"content\", \"mtime\"])".into()
                ),
                ("usr/bin/new".into(), "New".into()),
                ("usr/share/newdir".into(), "New".into()),
                ("lib/libx.so".into(), "New".into()),
                (
                    "lib/liby.so".into(),
                    "Changed([\"link target\", \"mtime\"])".into()
                ),
                ("etc/shadow".into(), "Changed([\"mode\", \"owner\"])".into()),
                ("etc/same-size".into(), "Changed([\"content\"])".into()),
            ]
        );
        assert!(c[1].is_dir && c[2].times_only() && c[3].content());
    }

    #[test]
    fn listing() {
        let out = "\
drwxr-xr-x          4,096 2024/03/01 10:00:00 .
drwxr-xr-x          4,096 2024/03/01 10:00:00 D7-F.1.0.1
-rw-r--r--             12 2024/03/01 10:00:00 README
drwxr-xr-x          4,096 2024/03/01 10:00:00 with space
";
        assert_eq!(parse_listing_dirs(out), vec!["D7-F.1.0.1", "with space"]);
    }
}
