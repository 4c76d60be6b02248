//! The page itself: the files `npm run build` wrote to --site-dir, served as they are.
//! The page routes with the URL's fragment (`#/event/jazz`), so a refresh or a shared
//! link loads `/` and no path needs rewriting. Built assets carry their content hash in
//! their names and are cached for good; `index.html` is revalidated on every load.

use std::path::Path;

use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS};
use tower::ServiceBuilder;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The router of the page in `dir`, whose scripts may connect to itself and to `services`
/// (their origins) only.
pub fn router(dir: &Path, services: &[&str]) -> anyhow::Result<axum::Router> {
    let index = dir.join("index.html");
    anyhow::ensure!(
        index.is_file(),
        "{} is missing: build the page first (`npm ci && npm run build` in web/app; `make up` does)",
        index.display()
    );
    let policy = content_security_policy(services);
    let headers = |cache: &'static str| {
        ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                CACHE_CONTROL,
                HeaderValue::from_static(cache),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                CONTENT_SECURITY_POLICY,
                policy.clone(),
            ))
    };
    Ok(axum::Router::new()
        .nest_service(
            "/assets",
            headers("public, max-age=31536000, immutable")
                .service(ServeDir::new(dir.join("assets"))),
        )
        .fallback_service(headers("no-cache").service(ServeDir::new(dir))))
}

/// Scripts, styles and images from the page's own origin (QR codes are data: URLs); calls
/// to the page's server and the mesh's services only; never framed.
fn content_security_policy(services: &[&str]) -> HeaderValue {
    let mut connect = vec!["'self'".to_owned()];
    connect.extend(services.iter().filter_map(|url| origin(url)));
    connect.dedup();
    HeaderValue::from_str(&format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        connect.join(" ")
    ))
    .expect("origins are header-safe: they come from parsed URLs")
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_may_connect_to_itself_and_the_services_only() {
        let policy = content_security_policy(&[
            "http://127.0.0.1:50050/",
            "http://127.0.0.1:50051",
            "not a url",
        ]);
        let policy = policy.to_str().expect("text");
        assert!(
            policy.contains("connect-src 'self' http://127.0.0.1:50050 http://127.0.0.1:50051;"),
            "{policy}"
        );
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }

    #[test]
    fn a_missing_build_says_how_to_make_it() {
        let error = router(Path::new("/nonexistent-site"), &[]).expect_err("no build");
        assert!(error.to_string().contains("npm run build"), "{error}");
    }
}
