//! CORS on the front port: which origin a reply names (`front.cors_origins`), the header lines
//! each reply carries, and the answer to an `OPTIONS` preflight. The admin port has no CORS.
//!
//! What a reply gets (the lines are rendered once, at start, in [`CorsHeads`]):
//!
//! | `front.cors_origins` | request | `/sse` | every other front reply (`/sub`, `/ping`, 405, 400…) |
//! |---|---|---|---|
//! | `*` (default) | any | `Access-Control-Allow-Origin: *` (iComet's bytes) | nothing |
//! | `*` (default) | with `Origin` | `Access-Control-Allow-Origin: *` | `Access-Control-Allow-Origin: *` |
//! | a list | `Origin` in the list | that origin, `Vary: Origin` | the same |
//! | a list | other or no `Origin` | `Vary: Origin` | `Vary: Origin` |
//!
//! So by default a request without `Origin` (every iComet client: JSONP script tags, iframes,
//! non-browser clients) gets iComet's bytes exactly. `front.cors_credentials: yes` (a list only)
//! adds `Access-Control-Allow-Credentials: true` after each allowed origin. The 404 page and the
//! HTTP-level error pages (400, 413, 431, 501) carry no CORS lines.
//!
//! Depends on: config (the settings), http (response writers).

use crate::config::{CorsConfig, CorsOrigins};
use crate::http::response::{header, write_usize};

/// Which origin a request's replies name: none, `*`, or one of the configured list. Small, so an
/// open subscription keeps it until its head is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CorsOrigin(u16);

impl CorsOrigin {
    /// No allowed origin (no `Origin` header, or one outside the list).
    pub const NONE: CorsOrigin = CorsOrigin(0);
    /// `*` mode and the request carried an `Origin`.
    const ANY: CorsOrigin = CorsOrigin(1);

    fn listed(index: usize) -> CorsOrigin {
        CorsOrigin(u16::try_from(index + 2).unwrap_or(0))
    }
}

/// The methods a preflight allows: the front port serves GET (OPTIONS is the preflight itself).
const ALLOW_METHODS: &[u8] = b"GET, OPTIONS";
/// `Access-Control-Allow-Headers` when the preflight names none (or names them oddly).
const ALLOW_HEADERS: &[u8] = b"Cache-Control, Content-Type, Last-Event-ID, X-Requested-With";
/// The longest `Access-Control-Request-Headers` echoed back.
const MAX_ECHOED_HEADERS: usize = 512;

/// The CORS lines of every possible reply, rendered once from the configuration.
#[derive(Debug, Clone)]
pub struct CorsHeads {
    /// The configured origins, in order (empty in `*` mode).
    origins: Vec<Box<[u8]>>,
    /// `*` mode.
    any: bool,
    /// Lines by `CorsOrigin` value: NONE, ANY, then one per listed origin.
    lines: Vec<Box<[u8]>>,
    max_age: u32,
}

impl CorsHeads {
    pub fn new(config: &CorsConfig) -> CorsHeads {
        let (any, origins): (bool, Vec<Box<[u8]>>) = match &config.origins {
            CorsOrigins::Any => (true, Vec::new()),
            CorsOrigins::List(list) => (false, list.iter().map(|o| o.as_bytes().into()).collect()),
        };
        let vary: &[u8] = if any { b"" } else { b"Vary: Origin\r\n" };
        let mut lines: Vec<Box<[u8]>> = vec![
            vary.into(),
            b"Access-Control-Allow-Origin: *\r\n".as_slice().into(),
        ];
        for origin in &origins {
            let mut l = Vec::with_capacity(origin.len() + 80);
            header(&mut l, "Access-Control-Allow-Origin", origin);
            if config.credentials {
                header(&mut l, "Access-Control-Allow-Credentials", b"true");
            }
            l.extend_from_slice(vary);
            lines.push(l.into());
        }
        CorsHeads {
            origins,
            any,
            lines,
            max_age: config.max_age,
        }
    }

    /// The origin a request with `origin` (its `Origin` header) is answered for.
    pub fn origin(&self, origin: Option<&[u8]>) -> CorsOrigin {
        match origin {
            None => CorsOrigin::NONE,
            Some(_) if self.any => CorsOrigin::ANY,
            Some(o) => self
                .origins
                .iter()
                .position(|allowed| **allowed == *o)
                .map_or(CorsOrigin::NONE, CorsOrigin::listed),
        }
    }

    /// The header lines (each ending in CRLF, possibly none) of a reply for `origin`; `sse`: the
    /// `/sse` head, which says `*` to everyone in `*` mode, as iComet.
    pub fn lines(&self, origin: CorsOrigin, sse: bool) -> &[u8] {
        let origin = if sse && self.any {
            CorsOrigin::ANY
        } else {
            origin
        };
        self.lines
            .get(usize::from(origin.0))
            .map_or(&[][..], |l| &l[..])
    }

    /// Appends the CORS lines of the answer to a preflight for `origin` (the reply is a
    /// `204 No Content`, `reply::no_content`). `request_headers` (the preflight's
    /// `Access-Control-Request-Headers`) is echoed when it is a plain list of header names. An
    /// origin that is not allowed gets no `Access-Control-Allow-*` line.
    pub fn preflight(&self, origin: CorsOrigin, request_headers: Option<&[u8]>, out: &mut Vec<u8>) {
        out.extend_from_slice(self.lines(origin, false));
        if origin != CorsOrigin::NONE {
            header(out, "Access-Control-Allow-Methods", ALLOW_METHODS);
            let allow = request_headers
                .filter(|h| plain_header_list(h))
                .unwrap_or(ALLOW_HEADERS);
            header(out, "Access-Control-Allow-Headers", allow);
            out.extend_from_slice(b"Access-Control-Max-Age: ");
            write_usize(out, self.max_age as usize);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Header names (tokens) separated by commas and blanks, not empty, not too long.
fn plain_header_list(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_ECHOED_HEADERS
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_, \t".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(origins: CorsOrigins, credentials: bool) -> CorsHeads {
        CorsHeads::new(&CorsConfig {
            origins,
            credentials,
            max_age: 600,
        })
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn star_mode_keeps_icomet_bytes_without_an_origin() {
        let h = heads(CorsOrigins::Any, false);
        assert_eq!(h.origin(None), CorsOrigin::NONE);
        assert_eq!(text(h.lines(CorsOrigin::NONE, false)), "");
        assert_eq!(
            text(h.lines(CorsOrigin::NONE, true)),
            "Access-Control-Allow-Origin: *\r\n"
        );
        let any = h.origin(Some(b"https://x.example"));
        assert_eq!(
            text(h.lines(any, false)),
            "Access-Control-Allow-Origin: *\r\n"
        );
        assert_eq!(
            text(h.lines(any, true)),
            "Access-Control-Allow-Origin: *\r\n"
        );
    }

    #[test]
    fn a_list_echoes_the_matching_origin_and_varies() {
        let list = CorsOrigins::List(vec!["https://a.example".into(), "http://b:3000".into()]);
        let h = heads(list.clone(), false);
        let b = h.origin(Some(b"http://b:3000"));
        assert_eq!(
            text(h.lines(b, true)),
            "Access-Control-Allow-Origin: http://b:3000\r\nVary: Origin\r\n"
        );
        for other in [
            Some(&b"https://evil.example"[..]),
            Some(b"https://a.example/"),
            None,
        ] {
            let o = h.origin(other);
            assert_eq!(o, CorsOrigin::NONE);
            assert_eq!(text(h.lines(o, false)), "Vary: Origin\r\n");
            assert_eq!(
                text(h.lines(o, true)),
                "Vary: Origin\r\n",
                "no * in list mode"
            );
        }
        let h = heads(list, true);
        let a = h.origin(Some(b"https://a.example"));
        assert_eq!(
            text(h.lines(a, false)),
            "Access-Control-Allow-Origin: https://a.example\r\n\
             Access-Control-Allow-Credentials: true\r\nVary: Origin\r\n"
        );
    }

    #[test]
    fn preflight_answers() {
        let h = heads(CorsOrigins::List(vec!["https://a.example".into()]), false);
        let mut out = Vec::new();
        let a = h.origin(Some(b"https://a.example"));
        h.preflight(a, Some(b"last-event-id, x-a"), &mut out);
        assert_eq!(
            text(&out),
            "Access-Control-Allow-Origin: https://a.example\r\n\
             Vary: Origin\r\nAccess-Control-Allow-Methods: GET, OPTIONS\r\n\
             Access-Control-Allow-Headers: last-event-id, x-a\r\nAccess-Control-Max-Age: 600\r\n"
        );
        out.clear();
        h.preflight(a, Some(b"x\"y"), &mut out);
        assert!(text(&out).contains(
            "Access-Control-Allow-Headers: Cache-Control, Content-Type, Last-Event-ID, X-Requested-With\r\n"
        ));
        out.clear();
        h.preflight(CorsOrigin::NONE, Some(b"x-a"), &mut out);
        assert_eq!(text(&out), "Vary: Origin\r\n");
    }
}
