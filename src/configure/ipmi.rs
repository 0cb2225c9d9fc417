//! The IPMI helpers: the `ipmitool` command sequences of the original
//! eDeploy's `ipmi.setup_user` and `ipmi.setup_network`, with the user
//! enabled by id and its channel access granted explicitly.

use crate::exec::CmdLine;
use rhai::Dynamic;
use std::net::Ipv4Addr;

/// A command and how the log shows it (the password masked).
pub(crate) struct Step {
    pub cmd: CmdLine,
    pub shown: String,
}

const MASK: &str = "********";

fn step(args: &[&str], secret: Option<&str>) -> Step {
    let cmd = CmdLine::argv(args.iter().copied());
    let shown = match secret {
        Some(s) => CmdLine::argv(args.iter().map(|a| if *a == s { MASK } else { a })).display(),
        None => cmd.display(),
    };
    Step { cmd, shown }
}

/// A channel number: an integer 0–15, or its decimal text.
pub(crate) fn channel(v: &Dynamic) -> Result<u8, String> {
    let n = if let Ok(i) = v.as_int() {
        i
    } else if let Ok(s) = v.clone().into_string() {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("channel '{s}' is not a number"))?
    } else {
        return Err(format!("channel must be a number, not {}", v.type_name()));
    };
    u8::try_from(n)
        .ok()
        .filter(|c| *c <= 15)
        .ok_or_else(|| format!("channel {n} is not an IPMI channel (0-15)"))
}

/// The password's storage size for `ipmitool` (16 or 20 bytes).
fn password_size(password: &str) -> Result<&'static str, String> {
    match password.len() {
        0 => Err("the password is empty".into()),
        1..=16 => Ok("16"),
        17..=20 => Ok("20"),
        n => Err(format!("the password has {n} bytes; IPMI allows 20")),
    }
}

/// Names user `id`, sets its password, makes it administrator on
/// `channel` and enables it. The check of the password (`user test`) is
/// [`user_test`].
pub(crate) fn setup_user(
    channel: u8,
    id: i64,
    user: &str,
    password: &str,
) -> Result<Vec<Step>, String> {
    let id = u8::try_from(id)
        .ok()
        .filter(|i| (1..=63).contains(i))
        .ok_or_else(|| format!("user id {id} is not an IPMI user id (1-63)"))?;
    if user.is_empty() || user.len() > 16 || user.chars().any(|c| c.is_control()) {
        return Err(format!(
            "user name '{user}' must be 1 to 16 printable bytes"
        ));
    }
    let size = password_size(password)?;
    let (ch, id) = (channel.to_string(), id.to_string());
    let mut set_password = vec!["ipmitool", "user", "set", "password", &id, password];
    if size == "20" {
        set_password.push(size);
    }
    Ok(vec![
        step(&["ipmitool", "user", "set", "name", &id, user], None),
        step(&set_password, Some(password)),
        step(&["ipmitool", "user", "priv", &id, "4", &ch], None),
        step(
            &[
                "ipmitool",
                "channel",
                "setaccess",
                &ch,
                &id,
                "link=on",
                "ipmi=on",
                "callin=on",
                "privilege=4",
            ],
            None,
        ),
        step(&["ipmitool", "user", "enable", &id], None),
    ])
}

/// `ipmitool user test ID 16|20 PASSWORD`: exits 0 when the BMC took the
/// password.
pub(crate) fn user_test(id: i64, password: &str) -> Result<Step, String> {
    let size = password_size(password)?;
    let id = id.to_string();
    Ok(step(
        &["ipmitool", "user", "test", &id, size, password],
        Some(password),
    ))
}

fn ipv4(what: &str, s: &str) -> Result<String, String> {
    s.trim()
        .parse::<Ipv4Addr>()
        .map(|a| a.to_string())
        .map_err(|_| format!("{what} '{s}' is not an IPv4 address"))
}

/// A static address on `channel`, ARP answers on, the VLAN (or none), then
/// a cold reset of the BMC so it takes the settings (as the original did).
pub(crate) fn setup_network(
    channel: u8,
    ip: &str,
    netmask: &str,
    gateway: &str,
    vlan: Option<i64>,
) -> Result<Vec<Step>, String> {
    let ip = ipv4("ip", ip)?;
    let netmask = ipv4("netmask", netmask)?;
    let gateway = ipv4("gateway", gateway)?;
    let vlan = match vlan {
        None => "off".to_string(),
        Some(v) if (1..=4094).contains(&v) => v.to_string(),
        Some(v) => return Err(format!("vlan id {v} is not 1-4094")),
    };
    let ch = channel.to_string();
    let lan = |rest: &[&str]| {
        let mut args = vec!["ipmitool", "lan", "set", ch.as_str()];
        args.extend_from_slice(rest);
        step(&args, None)
    };
    Ok(vec![
        lan(&["ipsrc", "static"]),
        lan(&["ipaddr", &ip]),
        lan(&["netmask", &netmask]),
        lan(&["defgw", "ipaddr", &gateway]),
        lan(&["arp", "respond", "on"]),
        lan(&["vlan", "id", &vlan]),
        step(&["ipmitool", "bmc", "reset", "cold"], None),
    ])
}
