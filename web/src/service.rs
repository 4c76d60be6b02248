//! The `ticketdrop.v1.WebService` gRPC service: where the page finds the mesh, and the
//! development sign-in.

use std::time::Duration;

use proto::v1::web_service_server::WebService;
use proto::v1::{DevLoginRequest, DevLoginResponse, GetSiteRequest, GetSiteResponse};
use server_kit::auth::{ADMIN_SCOPE, Issuer};
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};

pub struct Web {
    pub site: GetSiteResponse,
    /// Signs development tokens; None without --dev-login.
    pub dev_issuer: Option<Issuer>,
    pub dev_token_ttl: Duration,
}

impl Web {
    fn dev_login(&self, request: &DevLoginRequest) -> Result<DevLoginResponse> {
        let user_id = server_kit::validate::id("user_id", &request.user_id)?;
        let issuer = self.dev_issuer.as_ref().ok_or(Error::DevLoginDisabled)?;
        let scopes: &[&str] = if request.admin { &[ADMIN_SCOPE] } else { &[] };
        let token = issuer.mint(&user_id, scopes, self.dev_token_ttl);
        let expires_at = chrono::Utc::now()
            + chrono::Duration::from_std(self.dev_token_ttl).unwrap_or(chrono::Duration::MAX);
        tracing::info!(user_id, admin = request.admin, "development sign-in");
        Ok(DevLoginResponse {
            token,
            user_id,
            admin: request.admin,
            expires_at: Some(server_kit::convert::timestamp(expires_at)),
        })
    }
}

#[tonic::async_trait]
impl WebService for Web {
    async fn get_site(
        &self,
        _request: Request<GetSiteRequest>,
    ) -> Result<Response<GetSiteResponse>, Status> {
        Ok(Response::new(self.site.clone()))
    }

    async fn dev_login(
        &self,
        request: Request<DevLoginRequest>,
    ) -> Result<Response<DevLoginResponse>, Status> {
        Ok(Response::new(self.dev_login(request.get_ref())?))
    }
}
