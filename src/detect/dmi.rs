//! Reading `dmidecode`'s text output.
//!
//! `dmidecode` is the only way to the SMBIOS memory devices and processor
//! sockets (the kernel exports just the system, board and BIOS strings
//! under `/sys/class/dmi/id`), so its records are parsed here once for the
//! memory and cpu families.

/// One SMBIOS structure as `dmidecode` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// `0x0400`, as printed.
    pub handle: String,
    /// The SMBIOS type (4 processor, 16 memory array, 17 memory device…).
    pub dmi_type: u32,
    /// The line naming the structure (`Memory Device`).
    pub title: String,
    /// `Key: value` lines in order; lists under a key (`Flags:` followed by
    /// deeper-indented lines) are left out.
    pub fields: Vec<(String, String)>,
}

impl Record {
    /// The value of a field, `None` when missing or a placeholder
    /// (`Not Specified`, `Unknown`, …).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !is_placeholder(v))
    }

    /// The handle as `lshw` prints a physical id: hexadecimal, without
    /// `0x` and leading zeros (`0x0401` → `401`).
    pub fn physid(&self) -> Option<String> {
        let hex = self.handle.strip_prefix("0x")?;
        let n = u64::from_str_radix(hex, 16).ok()?;
        Some(format!("{n:x}"))
    }
}

/// Values firmware uses to say "nothing here".
pub(crate) fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    v.is_empty()
        || [
            "Not Specified",
            "Not Provided",
            "Not Present",
            "Not Available",
            "Unknown",
            "None",
            "NO DIMM",
            "Empty",
            "[Empty]",
            "To Be Filled By O.E.M.",
        ]
        .iter()
        .any(|p| v.eq_ignore_ascii_case(p))
}

/// Parses the output of `dmidecode` or `dmidecode -t …`.
pub fn parse(text: &str) -> Vec<Record> {
    let mut records = Vec::new();
    let mut cur: Option<Record> = None;
    let mut want_title = false;
    let mut field_indent = 0;
    for raw in text.lines() {
        let line = raw.trim_end();
        if let Some(rest) = line.strip_prefix("Handle ") {
            if let Some(r) = cur.take() {
                records.push(r);
            }
            // "Handle 0x0400, DMI type 4, 42 bytes"
            let mut parts = rest.split(',');
            let handle = parts.next().unwrap_or("").trim().to_string();
            let dmi_type = parts
                .next()
                .and_then(|p| p.trim().strip_prefix("DMI type "))
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(u32::MAX);
            cur = Some(Record {
                handle,
                dmi_type,
                ..Record::default()
            });
            want_title = true;
            field_indent = 0;
            continue;
        }
        let Some(rec) = cur.as_mut() else { continue };
        if line.trim().is_empty() {
            continue;
        }
        if want_title {
            rec.title = line.trim().to_string();
            want_title = false;
            continue;
        }
        // Fields are indented by one tab (spaces in some captures); list
        // items are indented deeper and belong to the key above them.
        let indent = line.len() - line.trim_start().len();
        if field_indent == 0 {
            field_indent = indent;
        }
        if indent > field_indent {
            continue;
        }
        if let Some((k, v)) = line.trim().split_once(':') {
            rec.fields
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if let Some(r) = cur.take() {
        records.push(r);
    }
    records
}

/// A size as `dmidecode` prints it (`16384 MB`, `16 GB`, `512 kB`) in
/// bytes; `None` for an empty slot (`No Module Installed`) or anything
/// else.
pub fn size_bytes(v: &str) -> Option<u64> {
    let mut it = v.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    let unit = match it.next()? {
        "bytes" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    Some(n * unit).filter(|b| *b > 0)
}

/// A speed (`1600 MHz`, `2666 MT/s`) in MHz.
pub fn speed_mhz(v: &str) -> Option<u64> {
    let mut it = v.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    match it.next()? {
        "MHz" | "MT/s" => Some(n).filter(|n| *n > 0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_fields_and_lists() {
        let text = "# dmidecode 3.4\nGetting SMBIOS data from sysfs.\n\n\
                    Handle 0x0401, DMI type 4, 42 bytes\nProcessor Information\n\
                    \tSocket Designation: CPU 1\n\tFlags:\n\t\tFPU (Floating-point unit on-chip)\n\
                    \tVersion: pc-i440fx-2.1\n\tCore Count: Unknown\n";
        let r = parse(text);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].dmi_type, 4);
        assert_eq!(r[0].title, "Processor Information");
        assert_eq!(r[0].physid().as_deref(), Some("401"));
        assert_eq!(r[0].get("Version"), Some("pc-i440fx-2.1"));
        assert_eq!(r[0].get("Core Count"), None);
        assert_eq!(r[0].fields.len(), 4);
    }

    #[test]
    fn sizes_and_speeds() {
        assert_eq!(size_bytes("16384 MB"), Some(17179869184));
        assert_eq!(size_bytes("16 GB"), Some(17179869184));
        assert_eq!(size_bytes("No Module Installed"), None);
        assert_eq!(speed_mhz("2666 MT/s"), Some(2666));
        assert_eq!(speed_mhz("Unknown"), None);
    }
}
