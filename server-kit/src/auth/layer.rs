//! The tower layer that checks every call's token against the service's policy.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::Status;

use super::{Caller, Policy, Verifier, unauthenticated};

/// Checks the `authorization: Bearer <jwt>` of every call against a [`Policy`]; a call
/// that passes carries its [`Caller`] in its extensions, one that fails is answered at
/// once and never reaches the service. An open RPC passes without a token, and carries
/// its caller when it sent a valid one. Health and reflection stay open, as load
/// balancers and grpcurl ask them without credentials.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    policy: Policy,
}

impl AuthLayer {
    pub fn new(verifier: Arc<Verifier>, policy: Policy) -> Self {
        Self { verifier, policy }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

/// Paths every caller may use.
const OPEN: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

impl<S, B, ResBody> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if OPEN.iter().any(|open| path.starts_with(open)) {
            return Either::Right(self.inner.call(request));
        }
        if self.layer.policy.access(path) == Some(super::Access::Open) {
            // Anyone may call; a caller who sends a valid token is known to the handler,
            // which may allow it more (inventory's consistent reads). A missing or bad
            // token is no refusal here.
            if request.headers().contains_key(http::header::AUTHORIZATION)
                && let Ok(caller) = self.layer.admit(&request)
            {
                request.extensions_mut().insert(caller);
            }
            return Either::Right(self.inner.call(request));
        }
        match self.layer.admit(&request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Either::Right(self.inner.call(request))
            }
            Err(status) => Either::Left(ready(Ok(status.into_http()))),
        }
    }
}

impl AuthLayer {
    fn admit<B>(&self, request: &http::Request<B>) -> Result<Arc<Caller>, Status> {
        let path = request.uri().path();
        let Some(access) = self.policy.access(path) else {
            return Err(Status::unimplemented(format!("no such method: {path}")));
        };
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| {
                unauthenticated(
                    "missing",
                    "this call needs a bearer token: the metadata `authorization: Bearer <jwt>` \
                     (`ticketdrop login --user U` prints one on the local stack)",
                )
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                unauthenticated(
                    "malformed",
                    "the authorization metadata must be `Bearer <jwt>`",
                )
            })?;
        let caller = self.verifier.verify(token)?;
        access.admits(&caller)?;
        Ok(caller)
    }
}
