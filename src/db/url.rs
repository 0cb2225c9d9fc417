//! DATABASE's value: a libpq connection URI,
//! `postgresql://[user[:password]@][host][:port][/dbname][?param=value&…]`,
//! read by rust-postgres, plus what it leaves to libpq:
//!
//! - `passfile=PATH`: the password from a file in libpq's `.pgpass`
//!   format (`host:port:database:user:password`, `*` matching anything,
//!   `\:` and `\\` escaped), the first line that matches; a socket
//!   directory matches as `localhost` or as its path;
//! - `connect_timeout`: [`super::CONNECT_TIMEOUT`] when not given.
//!
//! `host=` (a socket directory or a name) and `port=` as query parameters
//! are libpq's and rust-postgres's both.

use anyhow::{anyhow, bail, Context, Result};
use std::str::FromStr;
use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// `text` with its password, in the user part or a `password=`
/// parameter, replaced by `***`: what errors and logs show.
pub fn shown(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(rest) = out
        .strip_prefix("postgresql://")
        .or_else(|| out.strip_prefix("postgres://"))
    {
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let start = out.len() - rest.len();
                out.replace_range(start + colon + 1..start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let masked: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{head}{}", masked.join("&"));
    }
    out
}

/// Decodes `%XX` escapes.
fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("{s:?}: a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).with_context(|| format!("{s:?}: not UTF-8 once decoded"))
}

/// The rust-postgres configuration of DATABASE's value `text`.
pub fn config(text: &str) -> Result<postgres::Config> {
    client_config(text).map(postgres::Config::from)
}

/// [`config`] for rust-postgres's asynchronous client (`super::pipe`).
pub fn client_config(text: &str) -> Result<Config> {
    let name = shown(text);
    if !(text.starts_with("postgresql://") || text.starts_with("postgres://")) {
        bail!("DATABASE {name:?}: not a postgresql:// URI");
    }
    // `passfile` is libpq's: taken out before rust-postgres reads the rest.
    let (base, query) = match text.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (text, None),
    };
    let mut passfile = None;
    let mut kept = Vec::new();
    for param in query.into_iter().flat_map(|q| q.split('&')) {
        match param.split_once('=') {
            Some(("passfile", v)) => passfile = Some(percent_decode(v)?),
            _ if param.is_empty() => {}
            _ => kept.push(param),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = Config::from_str(&rebuilt).map_err(|e| anyhow!("DATABASE {name:?}: {e}"))?;
    if config.get_hosts().is_empty() {
        config.host_path("/var/run/postgresql");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(super::CONNECT_TIMEOUT);
    }
    if config.get_user().is_none() {
        config.user(current_user());
    }
    if config.get_options().is_none() {
        // No statement or lock wait outlives what a node waits for; a
        // boot storm of a thousand nodes on one profile queues on its row
        // for seconds, which is not a reason to send them away.
        config.options("-c statement_timeout=30000 -c lock_timeout=30000");
    }
    if config.get_application_name().is_none() {
        config.application_name("edeploy");
    }
    if let (Some(path), None) = (passfile, config.get_password()) {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("DATABASE {name:?}: passfile {path}: cannot read"))?;
        if let Some(pw) = pgpass_lookup(&text, &config) {
            config.password(pw);
        }
    }
    Ok(config)
}

/// The name of the user this process runs as.
fn current_user() -> String {
    // SAFETY: geteuid cannot fail; getpwuid returns null or a pointer to
    // a static record, read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return "root".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// The fields of one `.pgpass` line, `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(n), Some(f)) = (chars.next(), fields.last_mut()) {
                    f.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

/// The password of the first line of `text` (a `.pgpass` file) that
/// matches `config`'s host, port, database and user.
pub fn pgpass_lookup(text: &str, config: &Config) -> Option<String> {
    let hosts: Vec<String> = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => vec![h.clone()],
        Some(Host::Unix(p)) => vec!["localhost".into(), p.display().to_string()],
        None => vec!["localhost".into()],
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    let ok = |field: &str, wants: &[&str]| field == "*" || wants.contains(&field);
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f = pgpass_fields(line);
        if f.len() != 5 {
            continue;
        }
        let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        if ok(&f[0], &host_refs) && ok(&f[1], &[&port]) && ok(&f[2], &[&db]) && ok(&f[3], &[&user])
        {
            return Some(f[4].clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        assert_eq!(
            shown("postgresql://ed:s3cret@db.example:5433/edeploy"),
            "postgresql://ed:***@db.example:5433/edeploy"
        );
        assert_eq!(
            shown("postgresql://ed@/edeploy?host=/run/pg&password=x&port=5"),
            "postgresql://ed@/edeploy?host=/run/pg&password=***&port=5"
        );
        assert_eq!(shown("postgresql:///edeploy"), "postgresql:///edeploy");
    }

    #[test]
    fn the_whole_uri_form_is_read() {
        let c = config("postgresql://ed@/edeploy?host=/tmp/pg%20dir&port=6543").unwrap();
        assert_eq!(c.get_hosts(), &[Host::Unix("/tmp/pg dir".into())]);
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_dbname(), Some("edeploy"));
        assert_eq!(c.get_user(), Some("ed"));
        assert_eq!(c.get_connect_timeout(), Some(&crate::db::CONNECT_TIMEOUT));
        let c = config("postgresql://ed:pw@127.0.0.1:5999/e?connect_timeout=2").unwrap();
        assert_eq!(c.get_hosts(), &[Host::Tcp("127.0.0.1".into())]);
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(
            c.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(2))
        );
        for bad in ["mysql://x", "postgresql://h/d?nonsense=1", "edeploy"] {
            assert!(config(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_comes_from_the_passfile() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pgpass");
        std::fs::write(
            &pass,
            "# comment\n\
             other:5432:*:ed:wrong\n\
             127.0.0.1:5999:edeploy:ed:pa\\:ss\n\
             *:*:*:*:fallback\n",
        )
        .unwrap();
        let p = pass.display();
        let c = config(&format!(
            "postgresql://ed@127.0.0.1:5999/edeploy?passfile={p}"
        ))
        .unwrap();
        assert_eq!(c.get_password(), Some(&b"pa:ss"[..]));
        let c = config(&format!("postgresql://ed@127.0.0.1:1/other?passfile={p}")).unwrap();
        assert_eq!(c.get_password(), Some(&b"fallback"[..]));
        // A password in the URI wins.
        let c = config(&format!("postgresql://ed:uri@127.0.0.1/e?passfile={p}")).unwrap();
        assert_eq!(c.get_password(), Some(&b"uri"[..]));
        let e = config("postgresql://ed@h/e?passfile=/nonexistent/pgpass").unwrap_err();
        assert!(
            format!("{e:#}").contains("passfile /nonexistent/pgpass: cannot read"),
            "{e:#}"
        );
    }
}
