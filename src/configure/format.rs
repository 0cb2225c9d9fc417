//! `format(template, values)`: Python's `%` operator on strings, so the
//! heredoc templates of existing configure scripts port unchanged.

use rhai::{Array, Dynamic, Map};

/// The values a template is filled with.
pub enum Args<'a> {
    /// `%(key)s` placeholders, looked up by name.
    Named(&'a Map),
    /// `%s` placeholders, taken in order.
    Positional(&'a [Dynamic]),
}

/// Fills `template`: `%(key)s` with the named value (as text), `%s` with
/// the next positional value, `%%` with `%`. `%(key)d` / `%d` take an
/// integer. Anything else after a `%`, an unknown key, or a wrong number of
/// positional values is an error, as in Python.
pub fn format_template(template: &str, args: Args) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut next = 0usize;
    let mut rest = template;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let offset = template.len() - rest.len() + i;
        if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
            continue;
        }
        let (value, conv, r) = if let Some(named) = after.strip_prefix('(') {
            let Some(close) = named.find(')') else {
                return Err(format!(
                    "format: unterminated '%(' at offset {offset} of the template"
                ));
            };
            let key = &named[..close];
            let Args::Named(map) = args else {
                return Err(format!(
                    "format: '%({key})' needs a map of values, not an array"
                ));
            };
            let Some(value) = map.get(key) else {
                return Err(format!("format: unknown key '{key}'"));
            };
            let tail = &named[close + 1..];
            let mut chars = tail.chars();
            (value.clone(), chars.next(), chars.as_str())
        } else {
            let mut chars = after.chars();
            let conv = chars.next();
            let value = match args {
                Args::Positional(values) if matches!(conv, Some('s' | 'd')) => {
                    let Some(v) = values.get(next) else {
                        return Err(format!(
                            "format: not enough values for the template ({} given)",
                            values.len()
                        ));
                    };
                    next += 1;
                    v.clone()
                }
                Args::Named(_) if matches!(conv, Some('s' | 'd')) => {
                    return Err(format!(
                        "format: '%{}' at offset {offset} needs an array of values; \
                         with a map write %(key)s",
                        conv.unwrap_or('s')
                    ))
                }
                _ => Dynamic::UNIT,
            };
            (value, conv, chars.as_str())
        };
        match conv {
            Some('s') => out.push_str(&value.to_string()),
            Some('d') => match value.as_int() {
                Ok(n) => out.push_str(&n.to_string()),
                Err(t) => {
                    return Err(format!(
                        "format: '%d' at offset {offset} needs an integer, not {t}"
                    ))
                }
            },
            Some(c) => {
                return Err(format!(
                    "format: unsupported '%{c}' at offset {offset} of the template \
                     (use %(key)s, %s, or %% for a literal %)"
                ))
            }
            None => {
                return Err(
                    "format: '%' at the end of the template (use %% for a literal %)".to_string(),
                )
            }
        }
        rest = r;
    }
    out.push_str(rest);
    if let Args::Positional(values) = args {
        if next < values.len() {
            return Err(format!(
                "format: {} values given for {next} placeholders",
                values.len()
            ));
        }
    }
    Ok(out)
}

/// `format(template, map)`.
pub(crate) fn named(template: &str, map: &Map) -> Result<String, String> {
    format_template(template, Args::Named(map))
}

/// `format(template, array)`.
pub(crate) fn positional(template: &str, values: &Array) -> Result<String, String> {
    format_template(template, Args::Positional(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn named_and_percent() {
        let m = map(&[("eth", "eth0".into()), ("n", Dynamic::from_int(3))]);
        assert_eq!(
            named("auto %(eth)s %(n)d 100%% %(eth)s", &m).unwrap(),
            "auto eth0 3 100% eth0"
        );
        assert_eq!(named("", &m).unwrap(), "");
        assert_eq!(named("no placeholders", &m).unwrap(), "no placeholders");
    }

    #[test]
    fn named_errors() {
        let m = map(&[("eth", "eth0".into())]);
        assert!(named("%(ip)s", &m)
            .unwrap_err()
            .contains("unknown key 'ip'"));
        assert!(named("%(eth", &m).unwrap_err().contains("unterminated"));
        assert!(named("50%", &m)
            .unwrap_err()
            .contains("end of the template"));
        assert!(named("%(eth)x", &m)
            .unwrap_err()
            .contains("unsupported '%x'"));
        assert!(named("%(eth)d", &m)
            .unwrap_err()
            .contains("needs an integer"));
        assert!(named("%s", &m).unwrap_err().contains("needs an array"));
    }

    #[test]
    fn positional_values() {
        let v: Array = vec!["/chroot".into(), "/dev/vda".into(), "/chroot".into()];
        assert_eq!(
            positional("mkdir -p %s; mount %s1 %s", &v).unwrap(),
            "mkdir -p /chroot; mount /dev/vda1 /chroot"
        );
        assert!(positional("%s %s %s %s", &v)
            .unwrap_err()
            .contains("not enough"));
        assert!(positional("%s", &v)
            .unwrap_err()
            .contains("3 values given for 1"));
        assert!(positional("%(a)s", &v).unwrap_err().contains("needs a map"));
    }
}
