//! The typed client's `/api/v1/apis` methods (the HTTP gateway).

use http::Method;

use holactl_types::gateway::{
    ApiKeyList, ApiKeyView, ApiList, ApiView, AuthorizerList, AuthorizerView, CorsConfig,
    CreateApiKeyRequest, CreateApiRequest, CreateAuthorizerRequest, CreateRouteRequest,
    CreatedApiKey, DeployStageRequest, RouteList, RouteView, SetCorsRequest, StageList, StageView,
};

use super::{Client, ClientError};

/// Percent-encodes one path segment (route keys hold spaces, `/` and braces).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// `POST /api/v1/apis`.
    pub async fn create_api(&self, req: &CreateApiRequest) -> Result<ApiView, ClientError> {
        self.json(Method::POST, "/api/v1/apis", Some(Self::encode(req)?))
            .await
    }

    /// `GET /api/v1/apis`.
    pub async fn list_apis(&self) -> Result<ApiList, ClientError> {
        self.json(Method::GET, "/api/v1/apis", None).await
    }

    /// `GET /api/v1/apis/{api}`.
    pub async fn get_api(&self, api: &str) -> Result<ApiView, ClientError> {
        self.json(Method::GET, &format!("/api/v1/apis/{}", seg(api)), None)
            .await
    }

    /// `DELETE /api/v1/apis/{api}`.
    pub async fn delete_api(&self, api: &str) -> Result<(), ClientError> {
        self.no_content(Method::DELETE, &format!("/api/v1/apis/{}", seg(api)))
            .await
    }

    /// `PUT /api/v1/apis/{api}/cors`.
    pub async fn set_api_cors(
        &self,
        api: &str,
        cors: Option<CorsConfig>,
    ) -> Result<ApiView, ClientError> {
        self.json(
            Method::PUT,
            &format!("/api/v1/apis/{}/cors", seg(api)),
            Some(Self::encode(&SetCorsRequest { cors })?),
        )
        .await
    }

    /// `POST /api/v1/apis/{api}/routes`.
    pub async fn create_route(
        &self,
        api: &str,
        req: &CreateRouteRequest,
    ) -> Result<RouteView, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/apis/{}/routes", seg(api)),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `GET /api/v1/apis/{api}/routes`.
    pub async fn list_routes(&self, api: &str) -> Result<RouteList, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/apis/{}/routes", seg(api)),
            None,
        )
        .await
    }

    /// `GET /api/v1/apis/{api}/routes/{route}` (an id or `METHOD /path`).
    pub async fn get_route(&self, api: &str, route: &str) -> Result<RouteView, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/apis/{}/routes/{}", seg(api), seg(route)),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/apis/{api}/routes/{route}` (an id or `METHOD /path`).
    pub async fn delete_route(&self, api: &str, route: &str) -> Result<(), ClientError> {
        self.no_content(
            Method::DELETE,
            &format!("/api/v1/apis/{}/routes/{}", seg(api), seg(route)),
        )
        .await
    }

    /// `POST /api/v1/apis/{api}/authorizers`.
    pub async fn create_authorizer(
        &self,
        api: &str,
        req: &CreateAuthorizerRequest,
    ) -> Result<AuthorizerView, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/apis/{}/authorizers", seg(api)),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `GET /api/v1/apis/{api}/authorizers`.
    pub async fn list_authorizers(&self, api: &str) -> Result<AuthorizerList, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/apis/{}/authorizers", seg(api)),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/apis/{api}/authorizers/{name}`.
    pub async fn delete_authorizer(&self, api: &str, name: &str) -> Result<(), ClientError> {
        self.no_content(
            Method::DELETE,
            &format!("/api/v1/apis/{}/authorizers/{}", seg(api), seg(name)),
        )
        .await
    }

    /// `POST /api/v1/apis/{api}/keys`: the answer holds the key, shown once.
    pub async fn create_api_key(
        &self,
        api: &str,
        req: &CreateApiKeyRequest,
    ) -> Result<CreatedApiKey, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/apis/{}/keys", seg(api)),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `GET /api/v1/apis/{api}/keys`.
    pub async fn list_api_keys(&self, api: &str) -> Result<ApiKeyList, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/apis/{}/keys", seg(api)),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/apis/{api}/keys/{id}`: revokes the key.
    pub async fn revoke_api_key(&self, api: &str, id: &str) -> Result<ApiKeyView, ClientError> {
        self.json(
            Method::DELETE,
            &format!("/api/v1/apis/{}/keys/{}", seg(api), seg(id)),
            None,
        )
        .await
    }

    /// `POST /api/v1/apis/{api}/stages`: deploys the current routes to a stage.
    pub async fn deploy_stage(
        &self,
        api: &str,
        req: &DeployStageRequest,
    ) -> Result<StageView, ClientError> {
        self.json(
            Method::POST,
            &format!("/api/v1/apis/{}/stages", seg(api)),
            Some(Self::encode(req)?),
        )
        .await
    }

    /// `GET /api/v1/apis/{api}/stages`.
    pub async fn list_stages(&self, api: &str) -> Result<StageList, ClientError> {
        self.json(
            Method::GET,
            &format!("/api/v1/apis/{}/stages", seg(api)),
            None,
        )
        .await
    }

    /// `DELETE /api/v1/apis/{api}/stages/{stage}`.
    pub async fn delete_stage(&self, api: &str, stage: &str) -> Result<(), ClientError> {
        self.no_content(
            Method::DELETE,
            &format!("/api/v1/apis/{}/stages/{}", seg(api), seg(stage)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_keys_are_one_segment() {
        assert_eq!(super::seg("GET /users/{id}"), "GET%20%2Fusers%2F%7Bid%7D");
        assert_eq!(super::seg("abc-1_2.x~"), "abc-1_2.x~");
    }
}
