//! What a browser needs from a gRPC server: gRPC-Web (the page's Connect transport), CORS
//! for the page's own origin only, and, on the server that serves the page, the page
//! itself on the same port.
//!
//! Every service answers gRPC-Web over HTTP/1.1 or HTTP/2 beside plain gRPC (tonic-web
//! translates it). A browser calls a service on another port than the page's, which is
//! another origin: CORS lets exactly the origins in `--web-origin` (the page's) call with
//! the headers gRPC-Web sends, and read the status headers of an answer; any other
//! origin's preflight is refused, so a page elsewhere cannot spend a fan's token here.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use http::{HeaderName, HeaderValue, Method};
use tonic::body::Body;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// CORS for gRPC-Web calls from `origins` only; an error naming `--web-origin` when one
/// is not a valid header value.
pub fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|origin| {
            HeaderValue::from_str(origin.trim_end_matches('/'))
                .map_err(|_| anyhow::anyhow!("--web-origin {origin:?} is not a valid origin"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let header = HeaderName::from_static;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header("traceparent"),
            header("connect-protocol-version"),
        ])
        // A refusal answered in headers only: the page reads its code, message and
        // details (ErrorInfo: SOLD_OUT, CARD_DECLINED, ...).
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(PREFLIGHT_MAX_AGE))
}

/// Sends what is not gRPC (a browser loading the page: `GET /`, its scripts, its styles)
/// to the site's router, and gRPC and gRPC-Web calls on to the services. Without a site
/// every request goes on.
#[derive(Clone, Default)]
pub struct SiteLayer {
    site: Option<axum::Router>,
}

impl SiteLayer {
    pub fn new(site: Option<axum::Router>) -> Self {
        Self { site }
    }
}

impl<S> tower::Layer<S> for SiteLayer {
    type Service = Site<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Site {
            inner,
            site: self.site.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Site<S> {
    inner: S,
    site: Option<axum::Router>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Site<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<BoxFuture<Result<Self::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match &self.site {
            Some(site) if !is_grpc(&request) => {
                let mut site = site.clone();
                Either::Left(Box::pin(async move {
                    let response =
                        tower::Service::call(&mut site, request.map(axum::body::Body::new))
                            .await
                            .unwrap_or_else(|never: Infallible| match never {});
                    Ok(response.map(Body::new))
                }))
            }
            _ => Either::Right(self.inner.call(request)),
        }
    }
}

/// gRPC or gRPC-Web (`application/grpc`, `application/grpc-web+proto`, ...), or a CORS
/// preflight of one (another origin's page calling this server).
fn is_grpc<B>(request: &http::Request<B>) -> bool {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    content_type.starts_with("application/grpc")
        || (request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, content_type: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::builder().method(method).uri("/x");
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        builder.body(()).expect("a request")
    }

    #[test]
    fn grpc_and_grpc_web_go_to_the_services_and_the_rest_to_the_site() {
        assert!(is_grpc(&request(Method::POST, Some("application/grpc"))));
        assert!(is_grpc(&request(
            Method::POST,
            Some("application/grpc-web+proto")
        )));
        assert!(!is_grpc(&request(Method::GET, None)));
        assert!(!is_grpc(&request(Method::GET, Some("text/html"))));
        let mut preflight = request(Method::OPTIONS, None);
        preflight.headers_mut().insert(
            http::header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(is_grpc(&preflight));
    }

    #[test]
    fn an_origin_that_is_not_a_header_value_is_refused_naming_the_flag() {
        let error = cors(&["http://bad\norigin".to_owned()]).expect_err("invalid");
        assert!(error.to_string().contains("--web-origin"), "{error}");
        assert!(cors(&["http://127.0.0.1:50080/".to_owned()]).is_ok());
    }
}
