//! The front (subscriber) port: /sub /poll /stream /sse /iframe open subscriptions, /ping answers
//! at once, `OPTIONS` on those paths is a CORS preflight, anything else is the 404 page.
//!
//! Depends on: http, comet (stateless tokens), api (reply, params, frame, cors).

use super::cors::CorsOrigin;
use super::frame::Transport;
use super::{params, reply, Ctx, Outcome, ReplyStyle, SubscribeRequest};
use crate::comet::auth::Credential;
use crate::http::response::error_page;
use crate::http::{Method, Params, Request};

/// The longest `token=` accepted (a stateless token is at most 84 bytes, a `/sign` one 32).
const MAX_TOKEN_BYTES: usize = 128;

fn style(req: &Request<'_>) -> ReplyStyle {
    ReplyStyle {
        version: req.version,
        keep_alive: req.keep_alive,
        asks_close: req.asks_close,
        head_only: req.method == Method::Head,
    }
}

pub fn handle(req: &Request<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Outcome {
    let transport = match &*req.path {
        b"/sub" | b"/poll" => Transport::LongPoll,
        b"/stream" => Transport::Stream,
        b"/sse" => Transport::Sse,
        b"/iframe" => Transport::Iframe,
        b"/ping" => return ping(req, ctx, out),
        _ => {
            error_page(out, req.version, 404, req.uri, ctx.date);
            return Outcome::Done { close: true };
        }
    };
    let style = style(req);
    let cors = ctx.cors.origin(req.origin);
    if req.method == Method::Options {
        return preflight(req, ctx, &style, cors, out);
    }
    // A refusal is not the /sse head: `*` for everyone is the head's alone (as iComet).
    let lines = ctx.cors.lines(cors, false);
    if req.method != Method::Get {
        let status = (405, "Method Not Allowed");
        reply::fixed_with_lines(out, &style, ctx.date, status, &[], lines, b"");
        return Outcome::Done { close: false };
    }
    let p = Params::new(req.query, None);
    let parsed = (|| -> Result<SubscribeRequest, String> {
        let cname = params::cname(&p, ctx.config.limits.max_cname_bytes)?;
        let seq = params::seq(&p, "seq")?;
        let noop = params::seq(&p, "noop")?;
        let callback = match transport {
            Transport::LongPoll => params::callback(&p)?,
            _ => None,
        };
        let presented = p.get("token").map(|t| t.into_owned()).unwrap_or_default();
        if presented.len() > MAX_TOKEN_BYTES {
            return Err(format!("token longer than {MAX_TOKEN_BYTES} bytes"));
        }
        let stateless = ctx
            .stateless
            .and_then(|k| k.check(&cname, &presented, ctx.now));
        let credential = match stateless {
            Some(valid) => Credential::Stateless { valid },
            None => Credential::Signed(presented),
        };
        Ok(SubscribeRequest {
            transport,
            cname,
            seq,
            noop,
            callback,
            credential,
            version: req.version,
            cors,
        })
    })();
    match parsed {
        Ok(request) => Outcome::Subscribe(request),
        Err(reason) => {
            reply::bad_request(out, &style, ctx.date, lines, &reason);
            Outcome::Done { close: false }
        }
    }
}

/// An `OPTIONS` request on a front path: the CORS preflight answer.
fn preflight(
    req: &Request<'_>,
    ctx: &Ctx<'_>,
    style: &ReplyStyle,
    cors: CorsOrigin,
    out: &mut Vec<u8>,
) -> Outcome {
    let asked = req.header("access-control-request-headers");
    let mut lines = Vec::with_capacity(256);
    ctx.cors.preflight(cors, asked, &mut lines);
    reply::no_content(out, style, ctx.date, &lines);
    Outcome::Done { close: false }
}

/// `/ping`: `cb({"type":"ping","sub_timeout":N});` (callback `icomet_cb` by default; an empty `cb=`
/// gives plain JSON).
fn ping(req: &Request<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Outcome {
    let style = style(req);
    let cors = ctx.cors.origin(req.origin);
    if req.method == Method::Options {
        return preflight(req, ctx, &style, cors, out);
    }
    let lines = ctx.cors.lines(cors, false);
    let p = Params::new(req.query, None);
    let callback = match p.get("cb") {
        None => Some(b"icomet_cb".to_vec()),
        Some(_) => match params::callback(&p) {
            Ok(cb) => cb,
            Err(reason) => {
                reply::bad_request(out, &style, ctx.date, lines, &reason);
                return Outcome::Done { close: false };
            }
        },
    };
    let mut json = Vec::with_capacity(48);
    json.extend_from_slice(b"{\"type\":\"ping\",\"sub_timeout\":");
    crate::http::response::write_usize(&mut json, ctx.config.front.polling_timeout as usize);
    json.push(b'}');
    let mut body = Vec::with_capacity(json.len() + 16);
    reply::jsonp(&mut body, callback.as_deref(), &json);
    reply::fixed_with_lines(out, &style, ctx.date, (200, "OK"), &[], lines, &body);
    Outcome::Done { close: false }
}
