//! The admin (publisher) port: /sign /push /pub /broadcast /close /clear /info /check /psub /stats /metrics, behind
//! the allow/deny list, plus the reply bytes of the operations that run on a channel's home core;
//! and the live admin page: `/admin` (one HTML page, `admin.html`, compiled in) and
//! `/stats/stream` (Server-Sent Events, one `/stats` object a second, written by the worker).
//!
//! Depends on: http, api (reply, params, json).

use super::json::escape_into;
use super::reply::{self, SERVER};
use super::{params, Ctx, HomeOp, HomeRequest, Outcome, ReplyStyle};
use crate::http::response::{end_head, error_page, header, status_line, write_i64, write_usize};
use crate::http::{Method, Params, Request, Version};
use std::sync::Arc;

const TEXT_UTF8: (&str, &[u8]) = ("Content-Type", b"text/html; charset=utf-8");
const JAVASCRIPT: (&str, &[u8]) = ("Content-Type", b"text/javascript; charset=utf-8");

/// The live admin page (`/admin`): plain HTML, CSS and script, no outside resources; it reads
/// `/stats/stream` from the same port.
pub const ADMIN_PAGE: &[u8] = include_bytes!("admin.html");

fn style(req: &Request<'_>) -> ReplyStyle {
    ReplyStyle {
        version: req.version,
        keep_alive: req.keep_alive,
        asks_close: req.asks_close,
        head_only: req.method == Method::Head,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Sign,
    Push,
    Pub,
    Broadcast,
    Close,
    Clear,
    Info,
    Check,
    Psub,
    Stats,
    StatsStream,
    AdminPage,
    Metrics,
}

/// Whether a request on `path` may run while earlier requests of its connection still wait for
/// their replies: the channel operations and the answers that need nothing but counters. The
/// rest (an unknown path, `/psub`) waits until every earlier reply is sent.
pub fn pipelines(path: &[u8]) -> bool {
    matches!(
        path,
        b"/push"
            | b"/pub"
            | b"/sign"
            | b"/info"
            | b"/check"
            | b"/close"
            | b"/clear"
            | b"/broadcast"
            | b"/stats"
            | b"/metrics"
            | b"/admin"
    )
}

pub fn handle(req: &Request<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Outcome {
    if req.method == Method::Options {
        // CORS preflights are the front port's; here OPTIONS stays iComet's 501.
        error_page(out, req.version, 501, req.uri, ctx.date);
        return Outcome::Done { close: true };
    }
    let route = match &*req.path {
        b"/sign" => Route::Sign,
        b"/push" => Route::Push,
        b"/pub" => Route::Pub,
        b"/broadcast" => Route::Broadcast,
        b"/close" => Route::Close,
        b"/clear" => Route::Clear,
        b"/info" => Route::Info,
        b"/check" => Route::Check,
        b"/psub" => Route::Psub,
        b"/stats" => Route::Stats,
        b"/stats/stream" => Route::StatsStream,
        b"/admin" => Route::AdminPage,
        b"/metrics" => Route::Metrics,
        _ => {
            error_page(out, req.version, 404, req.uri, ctx.date);
            return Outcome::Done { close: true };
        }
    };
    let style = style(req);
    if !ctx.admin_allowed {
        let headers = [SERVER, ("Connection", &b"Close"[..])];
        reply::fixed(out, &style, ctx.date, (403, "Forbidden"), &headers, b"");
        return Outcome::Done { close: true };
    }
    let method_ok = match route {
        Route::Push | Route::Pub => matches!(req.method, Method::Get | Method::Post),
        Route::Broadcast | Route::StatsStream | Route::AdminPage => {
            matches!(req.method, Method::Get | Method::Head)
        }
        _ => true,
    };
    if !method_ok {
        reply::fixed(
            out,
            &style,
            ctx.date,
            (405, "Invalid Method"),
            &[SERVER],
            b"",
        );
        return Outcome::Done { close: false };
    }
    let form = (req.method == Method::Post && !req.body.is_empty()).then_some(&*req.body);
    let p = Params::new(req.query, form);
    match build(route, &p, ctx, &style, out) {
        Ok(outcome) => outcome,
        Err(reason) => {
            reply::bad_request_with(out, &style, ctx.date, &[SERVER], &reason);
            Outcome::Done { close: false }
        }
    }
}

fn build(
    route: Route,
    p: &Params<'_>,
    ctx: &Ctx<'_>,
    style: &ReplyStyle,
    out: &mut Vec<u8>,
) -> Result<Outcome, String> {
    let max_cname = ctx.config.limits.max_cname_bytes;
    let home = |op: HomeOp, callback: Option<Vec<u8>>| -> Result<Outcome, String> {
        Ok(Outcome::Home(HomeRequest {
            op,
            cname: params::cname(p, max_cname)?,
            callback,
            style: style.clone(),
        }))
    };
    match route {
        Route::Sign => {
            let expires = params::int(p, "expires", 0)? as i32;
            home(HomeOp::Sign { expires }, params::callback(p)?)
        }
        Route::Push | Route::Pub => {
            let raw = p.get("content").unwrap_or_default();
            let content = if route == Route::Push {
                let mut escaped = Vec::with_capacity(raw.len() + 16);
                escape_into(&mut escaped, &raw);
                escaped
            } else {
                params::verbatim_json_string(&raw)?;
                raw.into_owned()
            };
            home(HomeOp::Publish { content }, params::callback(p)?)
        }
        Route::Broadcast => {
            let raw = p.get("content").unwrap_or_default();
            let mut escaped = Vec::with_capacity(raw.len() + 16);
            escape_into(&mut escaped, &raw);
            if ctx.cluster {
                return Ok(Outcome::Home(HomeRequest {
                    op: HomeOp::Broadcast { content: escaped },
                    cname: Vec::new(),
                    callback: None,
                    style: style.clone(),
                }));
            }
            broadcast_ok(out, style, ctx.date);
            Ok(Outcome::Broadcast {
                content: Arc::from(escaped),
                close: false,
            })
        }
        Route::Close => home(HomeOp::Close, None),
        Route::Clear => home(HomeOp::Clear, None),
        Route::Check => home(HomeOp::Check, None),
        Route::Info => {
            let cname = params::cname(p, max_cname)?;
            if !cname.is_empty() {
                return home(HomeOp::Info, None);
            }
            if ctx.cluster {
                return home(HomeOp::Totals, None);
            }
            totals(out, style, ctx.date, ctx.channels, ctx.subscribers);
            Ok(Outcome::Done { close: false })
        }
        Route::Stats => {
            let mut body = Vec::with_capacity(512);
            ctx.metrics.write_json(&mut body);
            let json = ("Content-Type", &b"application/json; charset=utf-8"[..]);
            reply::fixed(out, style, ctx.date, (200, "OK"), &[SERVER, json], &body);
            Ok(Outcome::Done { close: false })
        }
        Route::Metrics => {
            let mut body = Vec::with_capacity(8192);
            super::metrics::write(&ctx.metrics.snapshot(), &mut body);
            let text = (
                "Content-Type",
                &b"text/plain; version=0.0.4; charset=utf-8"[..],
            );
            reply::fixed(out, style, ctx.date, (200, "OK"), &[SERVER, text], &body);
            Ok(Outcome::Done { close: false })
        }
        Route::Psub => {
            presence_head(out, style.version, ctx.date);
            Ok(Outcome::Presence)
        }
        Route::AdminPage => {
            let headers = [
                SERVER,
                TEXT_UTF8,
                ("Cache-Control", &b"no-cache"[..]),
                ("X-Content-Type-Options", &b"nosniff"[..]),
            ];
            reply::fixed(out, style, ctx.date, (200, "OK"), &headers, ADMIN_PAGE);
            Ok(Outcome::Done { close: false })
        }
        Route::StatsStream if style.head_only => {
            stats_stream_head(out, style.version, ctx.date);
            Ok(Outcome::Done { close: true })
        }
        Route::StatsStream => {
            stats_stream_head(out, style.version, ctx.date);
            // The first event at once, so a page has numbers before the next second.
            let mut json = Vec::with_capacity(512);
            ctx.metrics.write_json(&mut json);
            stats_event(style.version == Version::Http11, &json, out);
            Ok(Outcome::StatsStream)
        }
    }
}

/// The head of the endless `/stats/stream` (text/event-stream; chunked on HTTP/1.1, and the
/// connection closes with the stream on HTTP/1.0).
fn stats_stream_head(out: &mut Vec<u8>, version: Version, date: &[u8]) {
    status_line(out, version, 200, "OK");
    header(out, SERVER.0, SERVER.1);
    header(out, "Content-Type", b"text/event-stream; charset=utf-8");
    header(out, "Cache-Control", b"no-cache");
    if version == Version::Http11 {
        header(out, "Transfer-Encoding", b"chunked");
        header(out, "Date", date);
    }
    end_head(out);
}

/// One `/stats/stream` event, `data: <the /stats JSON>` and a blank line, framed as one chunk
/// when `chunked`. The JSON's own line end is dropped (an event's data is one line).
pub fn stats_event(chunked: bool, json: &[u8], out: &mut Vec<u8>) {
    let json = json.strip_suffix(b"\n").unwrap_or(json);
    let mut event = Vec::with_capacity(json.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(json);
    event.extend_from_slice(b"\n\n");
    super::frame::write_chunk(chunked, &event, out);
}

/// The head of the endless /psub stream.
fn presence_head(out: &mut Vec<u8>, version: Version, date: &[u8]) {
    status_line(out, version, 200, "OK");
    header(out, SERVER.0, SERVER.1);
    if version == Version::Http11 {
        header(out, "Transfer-Encoding", b"chunked");
        header(out, "Date", date);
    }
    header(out, "Content-Type", reply::DEFAULT_CONTENT_TYPE);
    end_head(out);
}

/// One presence event line, `1 name\n` or `0 name\n` (framed by the caller).
pub fn presence_line(online: bool, cname: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(cname.len() + 3);
    line.extend_from_slice(if online { b"1 " } else { b"0 " });
    line.extend_from_slice(cname);
    line.push(b'\n');
    line
}

/// `{"type":"sign",...}` reply.
pub fn sign_reply(out: &mut Vec<u8>, req: &HomeRequest, date: &[u8], sign: SignFields<'_>) {
    let mut json = Vec::with_capacity(160);
    json.extend_from_slice(b"{\"type\":\"sign\",\"cname\":\"");
    escape_into(&mut json, &req.cname);
    json.extend_from_slice(b"\",\"seq\":");
    write_i64(&mut json, i64::from(sign.seq as i32));
    json.extend_from_slice(b",\"token\":\"");
    json.extend_from_slice(sign.token_hex);
    json.extend_from_slice(b"\",\"expires\":");
    write_i64(&mut json, i64::from(sign.expires));
    json.extend_from_slice(b",\"sub_timeout\":");
    write_i64(&mut json, i64::from(sign.sub_timeout));
    json.extend_from_slice(b",\"epoch\":");
    write_i64(&mut json, i64::from(sign.epoch));
    json.push(b'}');
    let mut body = Vec::with_capacity(json.len() + 32);
    reply::jsonp(&mut body, req.callback.as_deref(), &json);
    home_reply(out, req, date, (200, "OK"), Some(TEXT_UTF8), &body);
}

/// A fixed reply to an operation that ran on the channel's home: `Server` first, then the content
/// type when the operation sets one.
fn home_reply(
    out: &mut Vec<u8>,
    req: &HomeRequest,
    date: &[u8],
    status: (u16, &str),
    content_type: Option<(&str, &[u8])>,
    body: &[u8],
) {
    match content_type {
        Some(kind) => reply::fixed(out, &req.style, date, status, &[SERVER, kind], body),
        None => reply::fixed(out, &req.style, date, status, &[SERVER], body),
    }
}

/// The values of a /sign reply.
pub struct SignFields<'a> {
    pub seq: u32,
    pub token_hex: &'a [u8],
    pub expires: i32,
    pub sub_timeout: u32,
    /// The channel's incarnation (an rcomet addition, last: clients that resume quote it).
    pub epoch: u32,
}

/// `{"type":"ok"}` after /push and /pub.
pub fn ok_reply(out: &mut Vec<u8>, req: &HomeRequest, date: &[u8]) {
    let mut body = Vec::with_capacity(40);
    reply::jsonp(&mut body, req.callback.as_deref(), b"{\"type\":\"ok\"}");
    home_reply(out, req, date, (200, "OK"), Some(JAVASCRIPT), &body);
}

/// `ok` for `/broadcast`.
pub fn broadcast_ok(out: &mut Vec<u8>, style: &ReplyStyle, date: &[u8]) {
    reply::fixed(out, style, date, (200, "OK"), &[SERVER], b"ok\n");
}

/// `/info` without `cname`: `{"version": "0.2.5", "channels": N, "subscribers": M}`.
pub fn totals(
    out: &mut Vec<u8>,
    style: &ReplyStyle,
    date: &[u8],
    channels: usize,
    subscribers: usize,
) {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(b"{\"version\": \"0.2.5\", \"channels\": ");
    write_usize(&mut body, channels);
    body.extend_from_slice(b", \"subscribers\": ");
    write_usize(&mut body, subscribers);
    body.extend_from_slice(b"}\n");
    reply::fixed(out, style, date, (200, "OK"), &[SERVER, TEXT_UTF8], &body);
}

/// 503 in cluster mode when the channel's Redis cannot be reached: nothing was stored.
pub fn unavailable(out: &mut Vec<u8>, req: &HomeRequest, date: &[u8]) {
    let body = b"cluster store unavailable, try again\n";
    home_reply(
        out,
        req,
        date,
        (503, "Service Unavailable"),
        Some(TEXT_UTF8),
        body,
    );
}

/// 429 when a new channel would pass max_channels.
pub fn too_many_channels(out: &mut Vec<u8>, req: &HomeRequest, date: &[u8]) {
    home_reply(out, req, date, (429, "Too Many Channels"), None, b"");
}

/// `ok <seq_next>` after /close and /clear, or the 404 for a missing channel.
pub fn ok_seq_or_missing(out: &mut Vec<u8>, req: &HomeRequest, date: &[u8], seq_next: Option<u32>) {
    let mut body = Vec::with_capacity(32 + req.cname.len());
    match seq_next {
        Some(seq) => {
            body.extend_from_slice(b"ok ");
            write_i64(&mut body, i64::from(seq as i32));
            body.push(b'\n');
            home_reply(out, req, date, (200, "OK"), Some(TEXT_UTF8), &body);
        }
        None => {
            body.extend_from_slice(b"channel[");
            body.extend_from_slice(&req.cname);
            body.extend_from_slice(b"] not connected\n");
            home_reply(out, req, date, (404, "Not Found"), Some(TEXT_UTF8), &body);
        }
    }
}

/// `{"cname": "x", "subscribers": k}` for /info?cname=.
pub fn info_reply(out: &mut Vec<u8>, req: &HomeRequest, date: &[u8], subscribers: usize) {
    let mut body = Vec::with_capacity(48 + req.cname.len());
    body.extend_from_slice(b"{\"cname\": \"");
    escape_into(&mut body, &req.cname);
    body.extend_from_slice(b"\", \"subscribers\": ");
    write_usize(&mut body, subscribers);
    body.extend_from_slice(b"}\n");
    home_reply(out, req, date, (200, "OK"), Some(TEXT_UTF8), &body);
}

/// `{"x": 1}` or `{}` for /check.
pub fn check_reply(out: &mut Vec<u8>, req: &HomeRequest, date: &[u8], exists: bool) {
    let mut body = Vec::with_capacity(16 + req.cname.len());
    if exists {
        body.extend_from_slice(b"{\"");
        escape_into(&mut body, &req.cname);
        body.extend_from_slice(b"\": 1}\n");
    } else {
        body.extend_from_slice(b"{}\n");
    }
    home_reply(out, req, date, (200, "OK"), Some(TEXT_UTF8), &body);
}
