//! The HTTP(S) client behind a flow's `lookup` nodes: a GET to the endpoint the operator
//! declared, with the caller's number, the line and the variables the node sends as query
//! parameters; a hard bound on the whole exchange; redirects never followed (a 3xx is an
//! error, so an answer never comes from another host); the answer read up to 64 KiB and
//! typed by `lookup::read_answer`. It runs in its own task: the media loop never waits on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::lookup::{Endpoint, MAX_ANSWER_BYTES, read_answer};
use crate::status::metrics::Metrics;

/// An error with its causes: "client error (Connect): tcp connect error: Connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

pub struct Lookups {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    metrics: Arc<Metrics>,
}

/// Why a lookup failed, as `/metrics` counts it, and what the log says.
#[derive(Debug)]
pub struct Failure {
    pub reason: &'static str,
    pub detail: String,
}

impl Lookups {
    pub fn new(metrics: Arc<Metrics>) -> Lookups {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = match tls {
            Ok(tls) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
            // ring's defaults always build; were they not to, plain http still works.
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(
                    rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .with_protocol_versions(&[&rustls::version::TLS13])
                    .expect("TLS 1.3 with ring")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                )
                .https_or_http()
                .enable_http1()
                .wrap_connector(HttpConnector::new()),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(https);
        Lookups { client, metrics }
    }

    /// Asks `endpoint` (named `name`): the answer's declared fields, or why not.
    pub async fn ask(
        &self,
        name: &str,
        endpoint: &Endpoint,
        params: &[(String, String)],
    ) -> Result<Vec<(String, String)>, Failure> {
        let started = Instant::now();
        let bound = Duration::from_millis(u64::from(endpoint.timeout_ms));
        let result = match tokio::time::timeout(bound, self.exchange(endpoint, params)).await {
            Ok(r) => r,
            Err(_) => Err(Failure {
                reason: "timeout",
                detail: format!("no answer within {} ms", endpoint.timeout_ms),
            }),
        };
        self.metrics.lookup_done(
            name,
            started.elapsed().as_secs_f64(),
            result.as_ref().err().map(|f| f.reason),
        );
        result
    }

    async fn exchange(
        &self,
        endpoint: &Endpoint,
        params: &[(String, String)],
    ) -> Result<Vec<(String, String)>, Failure> {
        let query = serde_urlencoded::to_string(params).unwrap_or_default();
        let uri = format!("{}?{query}", endpoint.url);
        let mut request = hyper::Request::get(uri.as_str())
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "hotline");
        if !endpoint.token_env.is_empty()
            && let Ok(token) = std::env::var(&endpoint.token_env)
            && !token.is_empty()
        {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Empty::new()).map_err(|e| Failure {
            reason: "unreachable",
            detail: format!("the request could not be made: {e}"),
        })?;
        let response = self.client.request(request).await.map_err(|e| Failure {
            reason: "unreachable",
            detail: chain(&e),
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure {
                reason: "status",
                detail: format!("answered {status} (redirects are not followed)"),
            });
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| Failure {
                reason: "answer",
                detail: format!("the answer could not be read: {e}"),
            })?
            .to_bytes();
        read_answer(&body, &endpoint.fields).map_err(|detail| Failure {
            reason: "answer",
            detail,
        })
    }
}
