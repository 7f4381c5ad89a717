//! The router's answers, through `tower::ServiceExt::oneshot`.

use axum::body::{Body, to_bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use tower::ServiceExt;

async fn get(uri: &str, etag: Option<&str>) -> Response {
    let mut req = Request::get(uri);
    if let Some(tag) = etag {
        req = req.header(IF_NONE_MATCH, tag);
    }
    let app = funetun_dashboard::router::<()>();
    app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

fn header(res: &Response, name: axum::http::HeaderName) -> &str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn body(res: Response) -> String {
    String::from_utf8(to_bytes(res.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn index_is_html_revalidated_every_visit_and_links_versioned_assets() {
    let res = get("/", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
    let tag = header(&res, ETAG).to_owned();
    let html = body(res).await;
    assert!(html.contains("data-testid=\"unreachable-banner\""));
    for asset in funetun_dashboard::assets::ASSETS {
        let version = asset.etag.trim_matches('"');
        assert!(
            html.contains(&format!("/assets/{}?v={version}", asset.name)),
            "{}",
            asset.name
        );
    }
    let again = get("/", Some(&tag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn assets_have_content_types_and_cache_headers() {
    for (name, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let asset = funetun_dashboard::assets::find(name).unwrap();
        let version = asset.etag.trim_matches('"');
        let res = get(&format!("/assets/{name}?v={version}"), None).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(header(&res, CONTENT_TYPE), ctype);
        assert_eq!(
            header(&res, CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&res, ETAG), asset.etag);
        assert_eq!(body(res).await.len(), asset.body.len());

        let unversioned = get(&format!("/assets/{name}"), None).await;
        assert_eq!(header(&unversioned, CACHE_CONTROL), "no-cache");
        let cached = get(&format!("/assets/{name}"), Some(asset.etag)).await;
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    }
}

#[tokio::test]
async fn unknown_assets_are_json_404s() {
    for uri in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/app.js/x",
    ] {
        let res = get(uri, None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{uri}");
        if header(&res, CONTENT_TYPE) == "application/json" {
            let v: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
            assert_eq!(v["error"], "unknown_asset");
        }
    }
}

#[tokio::test]
async fn the_router_merges_into_a_stateful_router() {
    #[derive(Clone)]
    struct AppState;
    let app: axum::Router = axum::Router::new()
        .route(
            "/v1/ping",
            axum::routing::get(|_: axum::extract::State<AppState>| async { "pong" }),
        )
        .merge(funetun_dashboard::router())
        .with_state(AppState);
    let res = app
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_charts_response_is_uncached_svg() {
    let res = funetun_dashboard::charts::round_charts_response(&[]);
    assert_eq!(header(&res, CONTENT_TYPE), "image/svg+xml");
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
    assert!(body(res).await.contains("data-testid=\"round-charts\""));
}
