//! The front (subscriber) port: /sub /poll /stream /sse /iframe and the WebSocket /ws open
//! subscriptions, /ping answers at once, `OPTIONS` on those paths is a CORS preflight, anything
//! else is the 404 page.
//!
//! Depends on: http, ws (the handshake), comet (stateless tokens, seq, resume), api (reply,
//! params, frame, cors).

use super::cors::CorsOrigin;
use super::frame::{EventId, Transport};
use super::{params, reply, Ctx, Outcome, ReplyStyle, SubscribeRequest};
use crate::comet::auth::Credential;
use crate::comet::seq::seq_after;
use crate::comet::Resume;
use crate::http::response::error_page;
use crate::http::{Method, Params, Request, Version};
use crate::ws::handshake;

/// The longest `token=` accepted (a stateless token is at most 84 bytes, a `/sign` one 32).
pub const MAX_TOKEN_BYTES: usize = 128;

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
        b"/ws" => return websocket(req, ctx, out),
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
        let credential = credential(ctx, &p, &cname)?;
        let mut seq = seq;
        let mut resume = None;
        if transport == Transport::Sse && params::switch(&p, "id", ctx.config.front.sse_ids)? {
            let (at, epoch) = sse_resume_point(req, &p, seq)?;
            seq = at;
            resume = Some(Resume { epoch });
        }
        Ok(SubscribeRequest {
            transport,
            cname,
            seq,
            noop,
            callback,
            credential,
            version: req.version,
            cors,
            resume,
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

/// What the subscriber presented (`token=`): a stateless token's verdict (checked here), or a
/// `/sign` token for the channel's home to check.
fn credential(ctx: &Ctx<'_>, p: &Params<'_>, cname: &[u8]) -> Result<Credential, String> {
    let presented = p.get("token").map(|t| t.into_owned()).unwrap_or_default();
    if presented.len() > MAX_TOKEN_BYTES {
        return Err(format!("token longer than {MAX_TOKEN_BYTES} bytes"));
    }
    let stateless = ctx
        .stateless
        .and_then(|k| k.check(cname, &presented, ctx.now));
    Ok(match stateless {
        Some(valid) => Credential::Stateless { valid },
        None => Credential::Signed(presented),
    })
}

/// `/ws`: the WebSocket handshake on the front port. A good one subscribes like `/stream` (the
/// 101 head is written when the channel's home has answered); a bad one is refused with the
/// handshake's status and reason, and the connection closes.
fn websocket(req: &Request<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Outcome {
    let style = style(req);
    let get = req.method == Method::Get;
    let http11 = req.version == Version::Http11;
    let accept = match handshake::check(get, http11, req.headers()) {
        Ok(accept) => accept,
        Err(e) => {
            let mut headers: Vec<(&str, &[u8])> = e.header().into_iter().collect();
            headers.push(("Content-Type", b"text/plain; charset=utf-8"));
            let mut body = e.reason().as_bytes().to_vec();
            body.push(b'\n');
            let phrase = status_phrase(e.status());
            reply::fixed(out, &style, ctx.date, (e.status(), phrase), &headers, &body);
            return Outcome::Done { close: true };
        }
    };
    let p = Params::new(req.query, None);
    let parsed = (|| -> Result<SubscribeRequest, String> {
        let cname = params::cname(&p, ctx.config.limits.max_cname_bytes)?;
        let seq = params::seq(&p, "seq")?;
        let noop = params::seq(&p, "noop")?;
        let credential = credential(ctx, &p, &cname)?;
        let epoch = params::epoch(&p)?;
        Ok(SubscribeRequest {
            transport: Transport::WebSocket,
            cname,
            seq,
            noop,
            callback: Some(accept.value().to_vec()),
            credential,
            version: req.version,
            cors: CorsOrigin::NONE,
            resume: Some(Resume { epoch }),
        })
    })();
    match parsed {
        Ok(request) => Outcome::Subscribe(request),
        Err(reason) => {
            reply::bad_request(out, &style, ctx.date, &[], &reason);
            Outcome::Done { close: true }
        }
    }
}

/// The reason phrase of the statuses a handshake refusal uses.
fn status_phrase(status: u16) -> &'static str {
    match status {
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        _ => "Bad Request",
    }
}

/// Where a resumable `/sse` subscription starts: a reconnecting `EventSource`'s `Last-Event-ID`
/// header (or `last_event_id=`, for polyfills that cannot set headers) names the last message it
/// got, `<epoch>:<seq>`, and wins over `seq=`; without one, `seq=` and no known epoch.
fn sse_resume_point(
    req: &Request<'_>,
    p: &Params<'_>,
    seq: u32,
) -> Result<(u32, Option<u32>), String> {
    let given = match req.header("last-event-id") {
        Some(header) => Some(header.to_vec()),
        None => p.get("last_event_id").map(|v| v.into_owned()),
    };
    match given.filter(|id| !id.is_empty()) {
        None => Ok((seq, None)),
        Some(id) => match EventId::parse(&id) {
            Some(id) => Ok((seq_after(id.seq), Some(id.epoch))),
            None => Err("Last-Event-ID is not <epoch>:<seq>".into()),
        },
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
