//! A relying party (the `openidconnect` crate) and a browser (a cookie-keeping client that
//! never follows redirects) for the sign-in tests.

use std::collections::HashMap;

use bypass_idp::service::oauth::clients::{self, ClientSpec};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;

use super::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn rp_http() -> openidconnect::reqwest::Client {
    openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Rp {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect: String,
}

/// A relying party trusted with self-service codes (`--allow-self-service-codes`), as most
/// tests' sign-ins ask for `bypass_codes:self`.
pub async fn register(app: &TestApp, public: bool, require_mfa: bool) -> Rp {
    register_with(app, public, require_mfa, true).await
}

pub async fn register_with(
    app: &TestApp,
    public: bool,
    require_mfa: bool,
    allow_self_service_codes: bool,
) -> Rp {
    let scopes = if allow_self_service_codes {
        "openid profile email offline_access bypass_codes:self"
    } else {
        "openid profile email offline_access"
    };
    let spec = ClientSpec {
        scopes: scopes.into(),
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        public,
        require_mfa,
        allow_self_service_codes,
        ..Default::default()
    };
    register_spec(app, spec).await
}

/// Registers `spec` with a redirect URI of its own on 127.0.0.1 (set here).
pub async fn register_spec(app: &TestApp, spec: ClientSpec) -> Rp {
    let redirect = format!(
        "http://127.0.0.1:9/callback/{}",
        uuid::Uuid::new_v4().simple()
    );
    let spec = ClientSpec {
        redirect_uris: vec![redirect.clone()],
        ..spec
    };
    let registered = clients::register(app.store(), spec)
        .await
        .map_err(|e| e.to_string())
        .unwrap();
    Rp {
        client_id: registered.client_id.as_str().to_owned(),
        secret: registered.secret.map(|s| s.expose().to_owned()),
        redirect,
    }
}

/// A browser: keeps cookies, never follows redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.base)
    }

    /// A browser of its own (its own cookies) talking to `base`.
    pub fn at(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    pub async fn page(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
        Self::page(self.http.get(url).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Self::page(
            self.http
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

pub fn csrf(page: &Page) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf in {}", page.body))
        + marker.len();
    let end = page.body[start..].find('"').unwrap() + start;
    page.body[start..end].to_owned()
}

/// After an accepted bypass code the sign-in offers to set up a new authenticator app
/// (policy `authenticatorReplacement`, default `offered`); "Not now" goes on to the client.
/// Any other page is returned as it is.
pub async fn not_now(browser: &Browser, page: Page) -> Page {
    if page.status == 200
        && page.body.contains("action=\"/oauth2/signin/replace\"")
        && page.body.contains("value=\"later\"")
    {
        return browser
            .post(
                "/oauth2/signin/replace",
                &[("csrf", &csrf(&page)), ("choice", "later")],
            )
            .await;
    }
    page
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Starts the flow at `auth_url` and signs in with a password; returns the next page.
pub async fn password_step(browser: &Browser, auth_url: &str, user: &str, password: &str) -> Page {
    let started = browser.get(auth_url).await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert_eq!(started.location.as_deref(), Some("/oauth2/signin"));
    let form = browser.get("/oauth2/signin").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"password\""));
    browser
        .post(
            "/oauth2/signin/password",
            &[
                ("csrf", &csrf(&form)),
                ("username", user),
                ("password", password),
            ],
        )
        .await
}

/// The relying party as discovery configures it.
pub type RpClient = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

pub struct Started {
    pub client: RpClient,
    pub auth_url: String,
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
}

pub async fn start(app: &TestApp, rp: &Rp) -> Started {
    start_with(app, rp, &[]).await
}

pub async fn start_with(app: &TestApp, rp: &Rp, extra_scopes: &[&str]) -> Started {
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &rp_http())
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(rp.client_id.clone()),
        rp.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(rp.redirect.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_scopes(extra_scopes.iter().map(|s| Scope::new((*s).to_owned())))
        .set_pkce_challenge(challenge)
        .url();
    Started {
        client,
        auth_url: url.to_string(),
        state,
        nonce,
        verifier,
    }
}

/// Checks the redirect back to the client and returns the code.
pub fn code_from(page: &Page, app: &TestApp, rp: &Rp, state: &CsrfToken) -> String {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.clone().unwrap();
    assert!(location.starts_with(&rp.redirect), "{location}");
    let params = query(&location);
    assert_eq!(params["state"], *state.secret());
    assert_eq!(params["iss"], app.base, "RFC 9207 iss");
    params["code"].clone()
}

pub async fn exchange_and_check(
    started: Started,
    code: String,
    expected_amr: &[&str],
) -> (String, String) {
    let Started {
        client,
        nonce,
        verifier,
        ..
    } = started;
    let http = rp_http();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    // Signature (JWKS), issuer, audience, expiry and nonce are checked here.
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("a valid ID token");
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));
    let amr: Vec<String> = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(amr, expected_amr);
    let acr = claims.auth_context_ref().unwrap().to_string();
    assert_eq!(
        acr,
        if expected_amr.contains(&"mfa") {
            "urn:bypass-idp:acr:mfa"
        } else {
            "urn:bypass-idp:acr:pwd"
        }
    );
    assert!(claims.auth_time().is_some());
    assert_eq!(
        claims.authorized_party().unwrap().as_str(),
        client.client_id().as_str()
    );
    let user_name = claims
        .preferred_username()
        .expect("profile scope: preferred_username")
        .as_str()
        .to_owned();
    assert_eq!(
        claims.email().unwrap().as_str(),
        format!("{user_name}@example.com")
    );

    // userinfo with the access token
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    assert_eq!(
        info.email().map(|e| e.as_str()),
        claims.email().map(|e| e.as_str())
    );

    // refresh, rotated
    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret(),
        "rotated"
    );
    (
        claims.subject().as_str().to_owned(),
        refresh.secret().clone(),
    )
}

pub async fn token_post(app: &TestApp, rp: &Rp, fields: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app.http.post(app.url("/oauth2/token")).form(fields);
    if let Some(secret) = &rp.secret {
        request = request.basic_auth(&rp.client_id, Some(secret));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Signs a password-only user in and returns (started flow, authorization code).
pub async fn code_for_plain_user(app: &TestApp, rp: &Rp, user: &str) -> (Started, String) {
    let started = start(app, rp).await;
    let browser = Browser::new(app);
    let done = password_step(&browser, &started.auth_url, user, PASSWORD).await;
    let code = code_from(&done, app, rp, &started.state);
    (started, code)
}

pub fn csrf_of(body: &str) -> String {
    csrf(&Page {
        status: 200,
        location: None,
        body: body.to_owned(),
    })
}

/// Exchanges an authorization code at the token endpoint, as the relying party would.
pub async fn redeem(app: &TestApp, rp: &Rp, code: &str, verifier: &str) -> (u16, Value) {
    token_post(
        app,
        rp,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &rp.redirect),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Signs in (password, then `second` if given) and redeems the code: the token response.
pub async fn sign_in(app: &TestApp, rp: &Rp, user: &str, second: Option<(&str, &str)>) -> Value {
    let started = start_with(app, rp, &["bypass_codes:self"]).await;
    let browser = Browser::new(app);
    let mut page = password_step(&browser, &started.auth_url, user, PASSWORD).await;
    if let Some((path, code)) = second {
        if path == "/oauth2/signin/bypass" {
            page = browser.get("/oauth2/signin?method=bypass").await;
        }
        page = browser
            .post(path, &[("csrf", &csrf(&page)), ("code", code)])
            .await;
        if path == "/oauth2/signin/bypass" {
            page = not_now(&browser, page).await;
        }
    }
    let code = code_from(&page, app, rp, &started.state);
    let (status, tokens) = redeem(app, rp, &code, started.verifier.secret()).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

pub async fn refresh(app: &TestApp, rp: &Rp, tokens: &Value) -> (u16, Value) {
    token_post(
        app,
        rp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await
}

/// Signs in (TOTP or bypass code) asking for `bypass_codes:self`; returns the access token.
pub async fn self_service_token(
    app: &TestApp,
    rp: &Rp,
    user: &str,
    second: (&str, &str),
) -> String {
    let tokens = sign_in(app, rp, user, Some(second)).await;
    assert!(
        tokens["scope"]
            .as_str()
            .unwrap()
            .contains("bypass_codes:self")
    );
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs in at the console (password, then TOTP) and returns the browser and the page it
/// lands on after following the console's redirects.
pub async fn console_sign_in(
    app: &TestApp,
    user: &str,
    secret: &[u8],
    start: &str,
) -> (Browser, Page) {
    let browser = Browser::new(app);
    let first = browser.get(start).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let authorize = first.location.unwrap();
    assert!(
        authorize.contains("client_id=bypass-idp-console")
            && authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let page = password_step(&browser, &authorize, user, PASSWORD).await;
    let totp = bypass_idp::domain::totp::code_at(secret, unix_now() + 30).unwrap();
    let done = browser
        .post(
            "/oauth2/signin/totp",
            &[("csrf", &csrf(&page)), ("code", &totp)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let callback = done.location.unwrap();
    assert!(
        callback.starts_with(&format!("{}/console/callback?", app.base)),
        "{callback}"
    );
    let mut page = browser.get(&callback).await;
    for _ in 0..3 {
        match (page.status, page.location.clone()) {
            (303, Some(next)) => page = browser.get(&next).await,
            _ => break,
        }
    }
    (browser, page)
}

/// Password, then a bypass code, in `browser`: the page after the code.
pub async fn code_sign_in(
    app: &TestApp,
    browser: &Browser,
    rp: &Rp,
    user: &str,
    code: &str,
) -> (Started, Page) {
    let started = start(app, rp).await;
    password_step(browser, &started.auth_url, user, PASSWORD).await;
    let form = browser.get("/oauth2/signin?method=bypass").await;
    let page = browser
        .post(
            "/oauth2/signin/bypass",
            &[("csrf", &csrf(&form)), ("code", code)],
        )
        .await;
    (started, page)
}
