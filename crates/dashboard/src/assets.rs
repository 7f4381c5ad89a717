//! The dashboard's files, compiled into the binary.
//!
//! Every file has a strong `ETag` (a 64-bit FNV-1a hash of its bytes,
//! computed at compile time). The page at `/` is served with
//! `Cache-Control: no-cache` and links its files with `?v=<etag>`, so a
//! browser revalidates the page on each visit but keeps a versioned file for
//! a year; a request without the matching version revalidates too. A
//! matching `If-None-Match` gets `304 Not Modified`.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The path under `/assets/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
    /// Its strong entity tag, quotes included.
    pub etag: &'static str,
}

/// The HTML of the page, with `{{v:NAME}}` placeholders for asset versions.
const INDEX_TEMPLATE: &str = include_str!("../assets/index.html");

/// Embeds `assets/<name>` with its content type and compile-time ETag.
macro_rules! asset {
    ($name:literal, $content_type:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../assets/", $name));
        const TAG: [u8; 18] = etag_bytes(BODY);
        Asset {
            name: $name,
            content_type: $content_type,
            body: BODY,
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => "\"0\"",
            },
        }
    }};
}

/// The embedded files served under `/assets/`.
pub const ASSETS: &[Asset] = &[
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// 64-bit FNV-1a: enough to tell two versions of a file apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The ETag text `"<16 hex digits>"` of `bytes`, at compile time.
const fn etag_bytes(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

/// The embedded file called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The version token of a file as the page links it (`?v=<token>`).
fn version_of(asset: &Asset) -> &str {
    asset.etag.trim_matches('"')
}

/// The page's HTML with every `{{v:NAME}}` replaced by that file's version.
pub fn index_html() -> &'static str {
    static HTML: OnceLock<String> = OnceLock::new();
    HTML.get_or_init(|| {
        let mut html = INDEX_TEMPLATE.to_owned();
        for asset in ASSETS {
            html = html.replace(&format!("{{{{v:{}}}}}", asset.name), version_of(asset));
        }
        html
    })
}

fn index_etag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| format!("\"{:016x}\"", fnv1a(index_html().as_bytes())))
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn respond(
    headers: &HeaderMap,
    etag: &'static str,
    content_type: &'static str,
    cache: &'static str,
    body: &'static [u8],
) -> Response {
    let common = [
        (ETAG, HeaderValue::from_static(etag)),
        (CACHE_CONTROL, HeaderValue::from_static(cache)),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// `GET /`: the page, revalidated on every visit.
pub async fn index(headers: HeaderMap) -> Response {
    respond(
        &headers,
        index_etag(),
        "text/html; charset=utf-8",
        "no-cache",
        index_html().as_bytes(),
    )
}

/// `GET /assets/{*path}`: an embedded file, or 404.
pub async fn asset(
    Path(name): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = find(&name) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "application/json")],
            r#"{"error":"unknown_asset","detail":"no such dashboard file"}"#,
        )
            .into_response();
    };
    let versioned = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.strip_prefix("v=") == Some(version_of(asset)))
    });
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    respond(&headers, asset.etag, asset.content_type, cache, asset.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_and_differ_between_files() {
        for a in ASSETS {
            assert_eq!(a.etag.len(), 18, "{}", a.etag);
            assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
            assert!(a.etag[1..17].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(ASSETS[0].etag, ASSETS[1].etag);
    }

    #[test]
    fn the_page_links_every_file_with_its_version() {
        let html = index_html();
        assert!(!html.contains("{{v:"), "unreplaced placeholder");
        for name in ["app.js", "style.css", "favicon.svg"] {
            let asset = find(name).unwrap();
            let link = format!("/assets/{name}?v={}", version_of(asset));
            assert!(html.contains(&link), "missing {link}");
        }
    }
}
