//! The request body: a `multipart/form-data` form (what `curl -F` sends),
//! read from the CGI's standard input.
//!
//! The body is never trusted to be as long as it says. With a
//! `CONTENT_LENGTH` we read exactly that many bytes (RFC 3875 §4.2: the
//! script must not read past it) and a body that ends early is malformed;
//! without one we read to the end but stop with "too large" as soon as
//! the limit is passed. The caller has already refused a declared length
//! over the limit, so nothing larger than the limit is ever held.

use bytes::Bytes;
use futures_core::Stream;
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The fields of an upload that the server knows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Form {
    /// Field `file`: a hardware list or a log.
    pub file: Option<Upload>,
    /// Field `failure`: the profile whose install failed.
    pub failure: Option<String>,
    /// Field `section`: the configuration section to use.
    pub section: Option<String>,
    /// Field `nonce`: the installer's fresh random word, signed back in
    /// the answer's trusted comment (checked by the caller).
    pub nonce: Option<String>,
    /// Bytes of body read.
    pub body_len: u64,
}

/// A file part: its name as the client gave it, and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// Why a body could not be read as a form.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("the upload is larger than the {limit} bytes the server accepts")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Malformed(String),
}

/// What the body stream reports to the multipart parser, so that after
/// the parser wraps it we can still tell a size refusal from bad input.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the upload is larger than the {limit} bytes the server accepts")]
    TooLarge { limit: u64 },
    #[error("the body ended after {got} of the {declared} bytes announced by CONTENT_LENGTH")]
    Truncated { declared: u64, got: u64 },
    #[error("cannot read the request body: {0}")]
    Io(#[from] std::io::Error),
}

const CHUNK: usize = 64 * 1024;

/// The body as a stream of chunks, read synchronously from `reader`:
/// the parser is polled by a single-threaded `block_on`, so a blocking
/// read inside `poll_next` stalls nothing else.
struct BodyStream<R> {
    reader: R,
    declared: Option<u64>,
    limit: u64,
    read: Arc<AtomicU64>,
    done: bool,
}

impl<R: Read + Unpin> Stream for BodyStream<R> {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let so_far = this.read.load(Ordering::Relaxed);
        let want = match this.declared {
            Some(declared) if so_far >= declared => {
                this.done = true;
                return Poll::Ready(None);
            }
            Some(declared) => CHUNK.min(usize::try_from(declared - so_far).unwrap_or(CHUNK)),
            None => CHUNK,
        };
        let mut buf = vec![0u8; want];
        let n = loop {
            match this.reader.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        };
        if n == 0 {
            this.done = true;
            // Without a declared length the end of input is the end of
            // the body; with one, an early end is a truncated upload.
            return Poll::Ready(this.declared.map(|declared| {
                Err(BodyError::Truncated {
                    declared,
                    got: so_far,
                })
            }));
        }
        let total = so_far + n as u64;
        this.read.store(total, Ordering::Relaxed);
        if total > this.limit {
            this.done = true;
            return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
        }
        buf.truncate(n);
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    }
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, FormError> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "multipart/form-data" {
        return Err(FormError::Malformed(format!(
            "expected a multipart/form-data upload (what curl -F sends), got {:?}",
            content_type
        )));
    }
    multer::parse_boundary(content_type).map_err(|_| {
        FormError::Malformed(
            "the multipart/form-data content type has no usable boundary".to_string(),
        )
    })
}

/// Reads and parses the form from `body`. `declared` is CONTENT_LENGTH
/// (already checked against `limit`).
pub fn read_form<R: Read + Send + Unpin>(
    body: R,
    boundary: &str,
    declared: Option<u64>,
    limit: u64,
) -> Result<Form, FormError> {
    let read = Arc::new(AtomicU64::new(0));
    let stream = BodyStream {
        reader: body,
        declared,
        limit,
        read: Arc::clone(&read),
        done: false,
    };
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut form = futures_executor::block_on(async {
        let mut form = Form::default();
        while let Some(field) = multipart.next_field().await.map_err(from_multer)? {
            let Some(name) = field.name().map(str::to_owned) else {
                return Err(FormError::Malformed(
                    "a part of the form has no name (or a name that is not UTF-8)".into(),
                ));
            };
            let filename = field.file_name().map(str::to_owned);
            let disposition = field
                .headers()
                .get("content-disposition")
                .map(|v| v.as_bytes());
            if filename.is_none() && names_a_file(disposition) {
                return Err(FormError::Malformed(format!(
                    "the file name of field {name:?} is not valid UTF-8"
                )));
            }
            let data = field.bytes().await.map_err(from_multer)?.to_vec();
            match name.as_str() {
                "file" => set_once(&mut form.file, &name, Upload { filename, data })?,
                "failure" => set_once(&mut form.failure, &name, text(&name, data)?)?,
                "section" => set_once(&mut form.section, &name, text(&name, data)?)?,
                "nonce" => set_once(&mut form.nonce, &name, text(&name, data)?)?,
                // Unknown fields are ignored, so newer installers can send
                // more than this server knows.
                _ => {}
            }
        }
        Ok(form)
    })?;
    form.body_len = read.load(Ordering::Relaxed);
    Ok(form)
}

/// Whether a part's Content-Disposition carries a `filename` parameter
/// (the parser drops a file name that is not UTF-8; we refuse it instead
/// of taking the part for a plain field).
fn names_a_file(disposition: Option<&[u8]>) -> bool {
    disposition.is_some_and(|v| {
        v.windows(b"filename".len())
            .any(|w| w.eq_ignore_ascii_case(b"filename"))
    })
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), FormError> {
    if slot.is_some() {
        return Err(FormError::Malformed(format!(
            "the field {name:?} is given more than once"
        )));
    }
    *slot = Some(value);
    Ok(())
}

fn text(name: &str, data: Vec<u8>) -> Result<String, FormError> {
    String::from_utf8(data)
        .map_err(|_| FormError::Malformed(format!("the field {name:?} is not valid UTF-8")))
}

fn from_multer(e: multer::Error) -> FormError {
    match e {
        multer::Error::StreamSizeExceeded { limit } => FormError::TooLarge { limit },
        multer::Error::StreamReadFailed(inner) => match inner.downcast_ref::<BodyError>() {
            Some(BodyError::TooLarge { limit }) => FormError::TooLarge { limit: *limit },
            Some(other) => FormError::Malformed(other.to_string()),
            None => FormError::Malformed(format!("cannot read the request body: {inner}")),
        },
        multer::Error::IncompleteStream | multer::Error::IncompleteFieldData { .. } => {
            FormError::Malformed(
                "the multipart body ends before its closing boundary (a broken or truncated upload)"
                    .into(),
            )
        }
        other => FormError::Malformed(format!("the multipart body is malformed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "XyZ";

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, data) in parts {
            out.extend_from_slice(format!("--{B}\r\n").as_bytes());
            match filename {
                Some(f) => out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        out
    }

    fn parse(bytes: &[u8], declared: Option<u64>, limit: u64) -> Result<Form, FormError> {
        read_form(bytes, B, declared, limit)
    }

    #[test]
    fn fields_of_a_hardware_upload() {
        let b = body(&[
            ("section", None, b"lab"),
            ("file", Some("hw.json"), b"[[\"a\",\"b\",\"c\",\"d\"]]"),
            ("extra", None, b"ignored"),
        ]);
        let f = parse(&b, Some(b.len() as u64), 1 << 20).unwrap();
        assert_eq!(f.section.as_deref(), Some("lab"));
        assert_eq!(f.failure, None);
        let file = f.file.unwrap();
        assert_eq!(file.filename.as_deref(), Some("hw.json"));
        assert_eq!(file.data, b"[[\"a\",\"b\",\"c\",\"d\"]]");
        assert_eq!(f.body_len, b.len() as u64);
    }

    #[test]
    fn binary_file_contents_are_kept() {
        let data: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
        let b = body(&[("file", Some("x.log.gz"), &data)]);
        let f = parse(&b, None, 1 << 20).unwrap();
        assert_eq!(f.file.unwrap().data, data);
    }

    #[test]
    fn a_truncated_body_is_malformed() {
        let b = body(&[("file", Some("hw"), b"[]")]);
        let e = parse(&b[..b.len() - 10], Some(b.len() as u64), 1 << 20).unwrap_err();
        assert!(matches!(e, FormError::Malformed(_)), "{e}");
        let e = parse(&b[..b.len() - 10], None, 1 << 20).unwrap_err();
        assert!(matches!(e, FormError::Malformed(_)), "{e}");
    }

    #[test]
    fn reading_stops_at_the_declared_length() {
        let mut b = body(&[("failure", None, b"vm")]);
        let declared = b.len() as u64;
        b.extend_from_slice(b"garbage after the body that must not be read");
        let f = parse(&b, Some(declared), 1 << 20).unwrap();
        assert_eq!(f.failure.as_deref(), Some("vm"));
        assert_eq!(f.body_len, declared);
    }

    #[test]
    fn a_body_longer_than_the_limit_is_refused_while_reading() {
        let big = vec![b'x'; 300_000];
        let b = body(&[("file", Some("hw"), &big)]);
        // No CONTENT_LENGTH: the reader itself must stop.
        let e = parse(&b, None, 100_000).unwrap_err();
        assert!(matches!(e, FormError::TooLarge { limit: 100_000 }), "{e}");
    }

    #[test]
    fn a_wrong_boundary_is_malformed() {
        let b = body(&[("file", Some("hw"), b"[]")]);
        let e = read_form(&b[..], "Other", Some(b.len() as u64), 1 << 20).unwrap_err();
        assert!(matches!(e, FormError::Malformed(_)), "{e}");
        let e = parse(b"no multipart here at all", None, 1 << 20).unwrap_err();
        assert!(matches!(e, FormError::Malformed(_)), "{e}");
    }

    #[test]
    fn non_utf8_values_are_refused() {
        let b = body(&[("section", None, b"l\xffb")]);
        let e = parse(&b, None, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("\"section\" is not valid UTF-8"), "{e}");
        let mut raw = Vec::new();
        raw.extend_from_slice(format!("--{B}\r\n").as_bytes());
        raw.extend_from_slice(b"Content-Disposition: form-data; name=\"file\"; filename=\"a\xff");
        raw.extend_from_slice(b"\xfe.log.gz\"\r\n\r\ndata\r\n");
        raw.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        let e = parse(&raw, None, 1 << 20).unwrap_err();
        assert!(matches!(e, FormError::Malformed(_)), "{e}");
    }

    #[test]
    fn a_field_twice_is_refused() {
        let b = body(&[("failure", None, b"a"), ("failure", None, b"b")]);
        let e = parse(&b, None, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("more than once"), "{e}");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            boundary("multipart/form-data; boundary=------abc").unwrap(),
            "------abc"
        );
        assert_eq!(
            boundary("Multipart/Form-Data; boundary=\"q q\"").unwrap(),
            "q q"
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary("application/x-www-form-urlencoded").is_err());
        assert!(boundary("").is_err());
    }
}
