//! The HTTP client of every request autopilot sends: the catalogs (Consul,
//! etcd) and `http` health checks. hyper's pooled HTTP/1.1 client over
//! hyper-util's TCP connector (names resolve through getaddrinfo, see
//! docs/configuration.md, "Name resolution") and rustls with ring for
//! `https`, certificates verified against the bundled web roots or the
//! configured CAs.
//!
//! Written on hyper rather than through reqwest: reqwest is this plus what
//! autopilot has no use for (redirects, cookies, proxies, compression, a URL
//! parser with IDNA), at about 250 KB of the static binary (bench/README.md).
//! The interface follows reqwest's, so call sites read the same; redirects
//! are followed only by a client built to (the health checks'), and only
//! for GET.
//!
//! This module owns connections, TLS, timeouts and URLs; it knows nothing of
//! any catalog's API.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;
use tokio::time::{timeout_at, Instant};

/// Why a request (or building a client) failed. Its message includes the
/// whole chain of causes but never the URL (its query may carry a token):
/// [`Error::peer`] names the server. Under a transport failure (`Send`,
/// `Body`) the chain of [`std::error::Error::source`] leads to the
/// `std::io::Error` that says what happened: the connection refused or
/// reset, a name that did not resolve, a connect timeout (`TimedOut`), a TLS
/// failure (an `InvalidData` error whose inner error is the `rustls::Error`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("not a usable URL: {reason}")]
    Url { reason: String },
    #[error("{0}")]
    Pem(String),
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("{0:?} is not a host name")]
    ServerName(String),
    #[error("no answer in time")]
    Timeout { url: Url },
    #[error("{}", chain(.source))]
    Send {
        url: Url,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the answer: {}", chain(.source))]
    Body {
        url: Url,
        #[source]
        source: hyper::Error,
    },
}

impl Error {
    /// The request's timeout ran out (connecting has its own, reported as an
    /// I/O error of kind `TimedOut`).
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// `host:port` of the server a request went to (the scheme's port when
    /// the URL names none).
    pub(crate) fn peer(&self) -> Option<String> {
        let url = match self {
            Error::Timeout { url } | Error::Send { url, .. } | Error::Body { url, .. } => url,
            _ => return None,
        };
        let uri: Uri = url.as_str().parse().ok()?;
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        Some(format!("{}:{port}", uri.host()?))
    }
}

/// `error: cause: its cause...`
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// An `http` or `https` URL: scheme, authority and path, with an optional
/// query. Path segments and query pairs are added percent-encoded.
#[derive(Clone, PartialEq)]
pub(crate) struct Url {
    text: String,
}

/// What a path segment must escape (the WHATWG URL standard's path percent-encode set, and
/// `/` and `%`, which would otherwise change the path's meaning).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');

impl Url {
    pub(crate) fn parse(text: &str) -> Result<Url, Error> {
        let invalid = |reason: &str| Error::Url {
            reason: reason.to_string(),
        };
        let uri: Uri = text
            .parse()
            .map_err(|error: http::uri::InvalidUri| invalid(&error.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(invalid("the scheme must be http or https"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.host().is_empty() {
            return Err(invalid("no host"));
        }
        let scheme = uri.scheme_str().unwrap_or_default();
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        Ok(Url {
            text: format!("{scheme}://{authority}{path}"),
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// This URL as logs and the catalog show it: a password and the query
    /// (which may carry a token) replaced by `***`.
    pub(crate) fn redacted(&self) -> String {
        // It parsed when it was made; a failure now would show nothing secret.
        let Ok(uri) = self.text.parse::<Uri>() else {
            return "***".to_string();
        };
        let authority = uri.authority().map_or("", |authority| authority.as_str());
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => authority.to_string(),
            },
            None => authority.to_string(),
        };
        let scheme = uri.scheme_str().unwrap_or_default();
        let query = if uri.query().is_some() { "?***" } else { "" };
        format!("{scheme}://{authority}{}{query}", uri.path())
    }

    /// This URL with `segments` appended to its path, each percent-encoded
    /// (an empty last segment, the trailing `/`, is replaced).
    pub(crate) fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.clone();
        if url.text.ends_with('/') {
            url.text.pop();
        }
        for segment in segments {
            url.text.push('/');
            url.text.extend(utf8_percent_encode(segment, SEGMENT));
        }
        url
    }

    /// Where a redirect's `Location` points, seen from this URL.
    fn resolve(&self, location: &str) -> Result<Url, Error> {
        let scheme_end = self.text.find("://").map_or(0, |at| at + 3);
        let path_start = self.text[scheme_end..]
            .find('/')
            .map_or(self.text.len(), |at| scheme_end + at);
        let target = if location.contains("://") {
            location.to_string()
        } else if location.starts_with("//") {
            format!("{}{location}", &self.text[..scheme_end - 2])
        } else if location.starts_with('/') {
            format!("{}{location}", &self.text[..path_start])
        } else {
            let path = self.text.split(['?', '#']).next().unwrap_or_default();
            let directory = path.rfind('/').filter(|&at| at >= path_start);
            format!("{}/{location}", &path[..directory.unwrap_or(path.len())])
        };
        Url::parse(&target)
    }

    /// Adds `key=value` pairs to the query, form-encoded.
    pub(crate) fn query_pairs_mut(&mut self) -> Query<'_> {
        Query(self)
    }
}

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The query of a [`Url`], being added to.
pub(crate) struct Query<'a>(&'a mut Url);

impl Query<'_> {
    pub(crate) fn append_pair(&mut self, key: &str, value: &str) -> &mut Self {
        let text = &mut self.0.text;
        text.push(if text.contains('?') { '&' } else { '?' });
        text.extend(form_urlencoded::byte_serialize(key.as_bytes()));
        text.push('=');
        text.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        self
    }

    pub(crate) fn extend_pairs(&mut self, pairs: &[(&str, &str)]) -> &mut Self {
        for (key, value) in pairs {
            self.append_pair(key, value);
        }
        self
    }
}

/// What a request can be sent to.
pub(crate) trait IntoUrl {
    fn into_url(self) -> Result<Url, Error>;
}

impl IntoUrl for Url {
    fn into_url(self) -> Result<Url, Error> {
        Ok(self)
    }
}

impl IntoUrl for &str {
    fn into_url(self) -> Result<Url, Error> {
        Url::parse(self)
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Result<Url, Error> {
        Url::parse(&self)
    }
}

/// A CA certificate to trust.
pub(crate) struct Certificate(CertificateDer<'static>);

impl Certificate {
    /// Every certificate of a PEM file; none is an error.
    pub(crate) fn from_pem_bundle(pem: &[u8]) -> Result<Vec<Certificate>, Error> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .map(|certificate| certificate.map(Certificate))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| Error::Pem(error.to_string()))?;
        if certificates.is_empty() {
            return Err(Error::Pem("no certificate".to_string()));
        }
        Ok(certificates)
    }
}

/// A client certificate chain and its private key.
pub(crate) struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The certificates and the (first) private key of one PEM text.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Identity, Error> {
        let chain = Certificate::from_pem_bundle(pem)?
            .into_iter()
            .map(|certificate| certificate.0)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|error| Error::Pem(format!("no private key: {error}")))?;
        Ok(Identity { chain, key })
    }
}

/// How a [`Client`] connects.
pub(crate) struct ClientBuilder {
    headers: HeaderMap,
    built_in_roots: bool,
    roots: Vec<Certificate>,
    identity: Option<Identity>,
    verify: bool,
    server_name: Option<String>,
    connect_timeout: Option<Duration>,
    redirects: usize,
}

impl ClientBuilder {
    /// Follows up to `limit` redirects of a GET (none by default).
    pub(crate) fn redirects(mut self, limit: usize) -> Self {
        self.redirects = limit;
        self
    }

    /// Headers every request carries (unless it sets them itself).
    pub(crate) fn default_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Whether the bundled web roots are trusted (they are by default).
    pub(crate) fn tls_built_in_root_certs(mut self, trusted: bool) -> Self {
        self.built_in_roots = trusted;
        self
    }

    pub(crate) fn add_root_certificate(mut self, certificate: Certificate) -> Self {
        self.roots.push(certificate);
        self
    }

    /// The certificate to show a server that asks for one.
    pub(crate) fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Accepts any server certificate (Consul's `verify: false`).
    pub(crate) fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.verify = !accept;
        self
    }

    /// Verifies server certificates for `name` instead of the URL's host.
    pub(crate) fn tls_server_name(mut self, name: &str) -> Self {
        self.server_name = Some(name.to_string());
        self
    }

    pub(crate) fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    pub(crate) fn build(self) -> Result<Client, Error> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(self.connect_timeout);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.tls_config()?)
            .https_or_http();
        let tls = match &self.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.trim_matches(['[', ']']).to_string())
                    .map_err(|_| Error::ServerName(name.clone()))?;
                tls.with_server_name_resolver(FixedServerNameResolver::new(name))
            }
            None => tls,
        };
        let connector = tls.enable_http1().wrap_connector(tcp);
        Ok(Client {
            pool: Pool::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(connector),
            headers: Arc::new(self.headers),
            redirects: self.redirects,
        })
    }

    fn tls_config(&self) -> Result<ClientConfig, Error> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?;
        let builder = if self.verify {
            let mut roots = RootCertStore::empty();
            if self.built_in_roots {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            for root in &self.roots {
                roots.add(root.0.clone()).map_err(Error::Tls)?;
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        };
        match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(Error::Tls),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

/// A pooled HTTP client. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub(crate) struct Client {
    pool: Pool<HttpsConnector<HttpConnector>, Full<Bytes>>,
    headers: Arc<HeaderMap>,
    redirects: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn builder() -> ClientBuilder {
        ClientBuilder {
            headers: HeaderMap::new(),
            built_in_roots: true,
            roots: Vec::new(),
            identity: None,
            verify: true,
            server_name: None,
            connect_timeout: None,
            redirects: 0,
        }
    }

    pub(crate) fn get(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub(crate) fn put(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    pub(crate) fn post(&self, url: impl IntoUrl) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    fn request(&self, method: Method, url: impl IntoUrl) -> RequestBuilder {
        RequestBuilder {
            parts: Parts {
                client: self.clone(),
                method,
                body: Bytes::new(),
                json: false,
            },
            url: url.into_url(),
            timeout: None,
        }
    }
}

/// One request, being described.
pub(crate) struct RequestBuilder {
    parts: Parts,
    url: Result<Url, Error>,
    timeout: Option<Duration>,
}

/// What every request of a [`RequestBuilder`] (the first, and each
/// redirect) is made of.
struct Parts {
    client: Client,
    method: Method,
    body: Bytes,
    json: bool,
}

impl RequestBuilder {
    /// `value` as the JSON body.
    pub(crate) fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        // Serializing autopilot's own JSON values cannot fail (string keys only).
        self.parts.body = serde_json::to_vec(value).unwrap_or_default().into();
        self.parts.json = true;
        self
    }

    pub(crate) fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.parts.body = body.into();
        self
    }

    /// The most the whole request may take, the answer's body included.
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub(crate) async fn send(self) -> Result<Response, Error> {
        let RequestBuilder {
            parts,
            url,
            timeout,
        } = self;
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let mut url = url?;
        let mut redirects = match parts.method {
            Method::GET => parts.client.redirects,
            _ => 0,
        };
        loop {
            let response = parts.send(url, deadline).await?;
            let location = response.headers.get(LOCATION);
            match location.and_then(|location| location.to_str().ok()) {
                Some(location) if redirects > 0 && response.status.is_redirection() => {
                    url = response.url.resolve(location)?;
                    redirects -= 1;
                }
                _ => return Ok(response),
            }
        }
    }
}

impl Parts {
    async fn send(&self, url: Url, deadline: Option<Instant>) -> Result<Response, Error> {
        let mut request = http::Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = url
            .as_str()
            .parse()
            .map_err(|error: http::uri::InvalidUri| Error::Url {
                reason: error.to_string(),
            })?;
        let headers = request.headers_mut();
        for (name, value) in self.client.headers.iter() {
            headers.insert(name, value.clone());
        }
        if self.json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let sent = within(deadline, self.client.pool.request(request)).await;
        let timed_out = || Error::Timeout { url: url.clone() };
        let response = sent.ok_or_else(timed_out)?.map_err(|source| Error::Send {
            url: url.clone(),
            source,
        })?;
        let (parts, body) = response.into_parts();
        Ok(Response {
            url,
            deadline,
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// `future`'s output, or `None` once `deadline` has passed.
async fn within<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// An answer: its status and headers, and its body still to read.
pub(crate) struct Response {
    url: Url,
    deadline: Option<Instant>,
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
}

impl Response {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The next piece of the body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let frame = within(self.deadline, self.body.frame()).await;
            let frame = match frame.ok_or_else(|| self.timed_out())? {
                None => return Ok(None),
                Some(frame) => frame.map_err(|source| self.unreadable(source))?,
            };
            // Trailers carry no body bytes.
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    /// The whole body.
    pub(crate) async fn bytes(mut self) -> Result<Bytes, Error> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(body.into())
    }

    /// The whole body as text (invalid UTF-8 replaced).
    pub(crate) async fn text(self) -> Result<String, Error> {
        let body = self.bytes().await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    fn timed_out(&self) -> Error {
        Error::Timeout {
            url: self.url.clone(),
        }
    }

    fn unreadable(&self, source: hyper::Error) -> Error {
        Error::Body {
            url: self.url.clone(),
            source,
        }
    }
}

/// Accepts any server certificate, still checking that the server holds its
/// key (the handshake's signatures). Consul's `tls.verify: false`.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_host_and_encode_what_is_added() {
        let base = Url::parse("https://[::1]:8501").unwrap();
        assert_eq!(base.as_str(), "https://[::1]:8501/");
        let mut url = base.join(&["v1", "kv", "a/b c%"]);
        url.query_pairs_mut()
            .append_pair("acquire", "s 1&")
            .extend_pairs(&[("dc", "dc1")]);
        assert_eq!(
            url.as_str(),
            "https://[::1]:8501/v1/kv/a%2Fb%20c%25?acquire=s+1%26&dc=dc1"
        );
    }

    #[test]
    fn redirects_resolve_against_the_url() {
        let url = Url::parse("http://app:8080/health/live?x=1").unwrap();
        let resolve = |location| url.resolve(location).unwrap().as_str().to_string();
        assert_eq!(resolve("https://other/x"), "https://other/x");
        assert_eq!(resolve("//other:81/y"), "http://other:81/y");
        assert_eq!(resolve("/ready"), "http://app:8080/ready");
        assert_eq!(resolve("ready?y=2"), "http://app:8080/health/ready?y=2");
        let root = Url::parse("http://app").unwrap();
        assert_eq!(root.resolve("x").unwrap().as_str(), "http://app/x");
    }

    /// A server that answers each connection's first request with the next
    /// of `answers` (head only), and records the request lines it got.
    async fn serve(answers: Vec<&'static str>) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for answer in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 4096];
                let read = stream.read(&mut request).await.unwrap();
                let text = String::from_utf8_lossy(&request[..read]).into_owned();
                log.lock()
                    .unwrap()
                    .push(text.lines().next().unwrap_or("").to_string());
                let head = format!("{answer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                stream.write_all(head.as_bytes()).await.unwrap();
            }
        });
        (base, seen)
    }

    #[tokio::test]
    async fn gets_follow_redirects_when_asked_and_only_then() {
        let redirect = "HTTP/1.1 302 Found\r\nlocation: /ready?a=1";
        let (base, seen) = serve(vec![redirect, "HTTP/1.1 204 No Content"]).await;
        let following = Client::builder().redirects(10).build().unwrap();
        let response = following.get(format!("{base}/live")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            *seen.lock().unwrap(),
            ["GET /live HTTP/1.1", "GET /ready?a=1 HTTP/1.1"]
        );

        let (base, _) = serve(vec![redirect]).await;
        let plain = Client::builder().build().unwrap();
        let response = plain.get(format!("{base}/live")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
    }

    #[test]
    fn only_http_urls_with_a_host_are_usable() {
        for text in ["ftp://x/", "consul:8500", "http:///x", "http//x", ""] {
            assert!(Url::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        assert!(Certificate::from_pem_bundle(b"not pem").is_err());
        assert!(Identity::from_pem(b"").is_err());
    }
}
