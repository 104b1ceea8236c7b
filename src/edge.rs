//! What a request passes through before its handler: the client's address, resolved
//! through trusted proxies only, and a body-size limit applied while the body is read.

use std::net::IpAddr;
use std::sync::Arc;

use poem::http::{StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::domain::address::{ForwardedHeader, TrustedProxies, client_address};

/// The address of the client that sent the request: limits and audit events use it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

/// Every value of a header, as text; bytes that are not UTF-8 become U+FFFD, which spoils
/// only the hop they are in.
fn header_values(req: &Request, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// Sets [`ClientAddr`] on every request.
pub struct ResolveClientAddr {
    pub trusted: Arc<TrustedProxies>,
    pub header: ForwardedHeader,
}

impl<E: Endpoint> Middleware<E> for ResolveClientAddr {
    type Output = ResolveClientAddrEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ResolveClientAddrEndpoint {
            inner,
            trusted: self.trusted.clone(),
            header: self.header,
        }
    }
}

pub struct ResolveClientAddrEndpoint<E> {
    inner: E,
    trusted: Arc<TrustedProxies>,
    header: ForwardedHeader,
}

impl<E: Endpoint> Endpoint for ResolveClientAddrEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let client = peer.map(|peer| {
            client_address(
                peer,
                self.header,
                &header_values(&req, self.header.name()),
                &self.trusted,
            )
        });
        req.set_data(ClientAddr(client));
        self.inner.call(req).await
    }
}

/// How a route tells a client its body was too large, in its own protocol's words.
pub type TooLarge = fn(usize) -> Response;

/// Reads the body up to `max` bytes before the handler runs; a larger body (declared or
/// streamed) is answered with `too_large` and never held in memory.
pub struct BodyLimit {
    pub max: usize,
    pub too_large: TooLarge,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint {
            inner,
            max: self.max,
            too_large: self.too_large,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
    too_large: TooLarge,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max as u64) {
            return Ok(close((self.too_large)(self.max)));
        }
        match req.take_body().into_bytes_limit(self.max).await {
            Ok(bytes) => req.set_body(bytes),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                return Ok(close((self.too_large)(self.max)));
            }
            Err(_) => return Ok(StatusCode::BAD_REQUEST.into_response()),
        }
        Ok(self.inner.call(req).await?.into_response())
    }
}

/// The rest of an oversized body is not read, so the connection cannot be reused.
fn close(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        poem::http::HeaderValue::from_static("close"),
    );
    response
}
