//! The CGI answer (RFC 3875 §6) and the server log line.

use crate::clock::Utc;
use std::io::{self, Write};

/// An answer: status, extra headers, JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Response {
    pub fn ok(body: serde_json::Value) -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }

    /// `{"error": sentence}` with `status`.
    pub fn error(status: u16, sentence: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: serde_json::json!({ "error": sentence }),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The error sentence of an error answer.
    pub fn sentence(&self) -> Option<&str> {
        self.body.get("error").and_then(|e| e.as_str())
    }

    /// Writes the CGI response: `Status:` (left out for 200, which is the
    /// CGI default), `Content-Type:`, other headers, a blank line, the body.
    pub fn write_cgi(&self, out: &mut dyn Write) -> io::Result<()> {
        let json = [("Content-Type", "application/json")];
        let headers = json
            .into_iter()
            .chain(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        write_answer(out, self.status, headers, Some(&self.body_bytes()))
    }

    /// The exact bytes of the body [`Response::write_cgi`] writes: the
    /// JSON and a newline (what a signature covers).
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut body = self.body.to_string();
        body.push('\n');
        body.into_bytes()
    }
}

/// Writes a CGI answer: its head ([`cgi_head`]), then `body` (none for a
/// `HEAD` request).
pub fn write_answer<'a>(
    out: &mut dyn Write,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: Option<&[u8]>,
) -> io::Result<()> {
    out.write_all(cgi_head(status, headers).as_bytes())?;
    if let Some(body) = body {
        out.write_all(body)?;
    }
    out.flush()
}

/// The head of a CGI answer: `Status:` (left out for 200, the CGI
/// default), the headers, the blank line.
pub fn cgi_head<'a>(status: u16, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::new();
    if status != 200 {
        text.push_str(&format!("Status: {status} {}\r\n", reason_phrase(status)));
    }
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// Writes the server log: one line per request, plus warnings, each
/// `upload.cgi[<pid>] <RFC 3339 UTC time> <REMOTE_ADDR>: <text>`. Under a
/// web server this is the CGI's stderr, which lands in its error log.
pub struct RequestLog<'a> {
    name: &'static str,
    pid: u32,
    remote: String,
    out: &'a mut dyn Write,
}

impl<'a> RequestLog<'a> {
    pub fn new(remote: &str, out: &'a mut dyn Write) -> RequestLog<'a> {
        RequestLog::named("upload.cgi", remote, out)
    }

    /// The log of another CGI, whose lines start with `name[<pid>]`.
    pub fn named(name: &'static str, remote: &str, out: &'a mut dyn Write) -> RequestLog<'a> {
        RequestLog {
            name,
            pid: std::process::id(),
            // The address comes from the web server, but keep the line one
            // line whatever it holds.
            remote: one_line(if remote.is_empty() { "-" } else { remote }),
            out,
        }
    }

    pub fn line(&mut self, text: &str) {
        let line = format!(
            "{}[{}] {} {}: {}\n",
            self.name,
            self.pid,
            Utc::now().rfc3339(),
            self.remote,
            one_line(text)
        );
        // Nowhere to report a failing error log: the answer still goes out.
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }

    /// The closing line of a request: `<status> <reason>`.
    pub fn status(&mut self, status: u16, reason: &str) {
        self.line(&format!("{status} {reason}"));
    }

    pub fn warning(&mut self, text: &str) {
        self.line(&format!("warning: {text}"));
    }
}

/// Control characters (a newline in a client-chosen name, say) would
/// forge extra log lines: show them escaped.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgi(r: &Response) -> String {
        let mut out = Vec::new();
        r.write_cgi(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn success_has_no_status_line() {
        let text = cgi(&Response::ok(serde_json::json!({"profile": "vm"})));
        assert_eq!(
            text,
            "Content-Type: application/json\r\n\r\n{\"profile\":\"vm\"}\n"
        );
    }

    #[test]
    fn errors_carry_status_and_sentence() {
        let r = Response::error(405, "only POST is accepted").with_header("Allow", "POST");
        assert_eq!(r.sentence(), Some("only POST is accepted"));
        assert_eq!(
            cgi(&r),
            "Status: 405 Method Not Allowed\r\nContent-Type: application/json\r\n\
             Allow: POST\r\n\r\n{\"error\":\"only POST is accepted\"}\n"
        );
        assert!(cgi(&Response::error(413, "x")).starts_with("Status: 413 Content Too Large\r\n"));
        assert!(cgi(&Response::error(507, "x")).starts_with("Status: 507 Insufficient Storage\r\n"));
    }

    #[test]
    fn log_lines_have_pid_time_and_address() {
        let mut out = Vec::new();
        RequestLog::new("10.0.0.7", &mut out).status(404, "no profile\nmatches");
        let text = String::from_utf8(out).unwrap();
        let prefix = format!("upload.cgi[{}] ", std::process::id());
        assert!(text.starts_with(&prefix), "{text}");
        let rest = &text[prefix.len()..];
        // 2024-05-01T12:30:00Z
        assert_eq!(rest.as_bytes()[10], b'T');
        assert_eq!(&rest[19..], "Z 10.0.0.7: 404 no profile\\nmatches\n");
        assert_eq!(text.lines().count(), 1);
    }
}
