//! The Consul backend: the agent's HTTP API v1 (docs/design.md, "Discovery").
//!
//! Owns the Consul settings (config merged with the `CONSUL_*` environment variables, the
//! way Consul's own CLI reads them), the HTTP client (token, basic auth, TLS) and the request
//! shapes. It must not keep any per-service state: everything it needs comes with each call.
//! The ACL token lives only in a sensitive header and in [`Secret`]; it is never formatted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::http_client::{Certificate, Client, ClientBuilder, Identity, RequestBuilder, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{blocking_timeout, build_client, Call, REQUEST_TIMEOUT};
use super::{go_duration, DiscoveryError, HealthyInstances, Instance, ServiceRegistration};
use crate::config::model::{CheckStatus, ConsulConfig, TlsConfig, WatchConfig};

mod kv;
mod lock;

const BACKEND: &str = "consul";
/// Consul's own default when nothing names an agent.
const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";
/// The longest blocking wait Consul honours.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// A credential: shown as `<redacted>` by `Debug`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `CONSUL_HTTP_AUTH`: HTTP basic authentication, `user[:password]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub user: String,
    pub password: Option<Secret>,
}

/// Where the agent is and how to talk to it, after the environment has been applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsulSettings {
    /// `host:port`.
    pub address: String,
    /// `http` or `https`.
    pub scheme: String,
    pub token: Option<Secret>,
    pub basic_auth: Option<BasicAuth>,
    /// Used only with `https`.
    pub tls: TlsConfig,
}

impl ConsulSettings {
    /// The config's settings (Consul's defaults without one) overridden by the environment,
    /// read through `env` (pass `|name| std::env::var(name).ok()`). Empty variables count as
    /// unset, as in Consul. `CONSUL_HTTP_TOKEN_FILE` wins over `CONSUL_HTTP_TOKEN`;
    /// `CONSUL_HTTP_SSL=true` switches to https; certificates are verified unless
    /// `tls.verify` or `CONSUL_HTTP_SSL_VERIFY` says false.
    pub fn resolve(
        config: Option<&ConsulConfig>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConsulSettings, DiscoveryError> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let mut settings = ConsulSettings::from_config(config);
        if let Some(addr) = env("CONSUL_HTTP_ADDR") {
            let (scheme, address) = split_address(&addr)?;
            settings.address = address;
            if let Some(scheme) = scheme {
                settings.scheme = scheme;
            }
        }
        if let Some(token) = env("CONSUL_HTTP_TOKEN") {
            settings.token = Some(Secret(token));
        }
        if let Some(path) = env("CONSUL_HTTP_TOKEN_FILE") {
            settings.token = Some(read_token_file(Path::new(&path))?);
        }
        if let Some(auth) = env("CONSUL_HTTP_AUTH") {
            settings.basic_auth = Some(parse_basic_auth(&auth));
        }
        if let Some(ssl) = env("CONSUL_HTTP_SSL") {
            if parse_bool("CONSUL_HTTP_SSL", &ssl)? {
                settings.scheme = "https".to_string();
            }
        }
        let tls = &mut settings.tls;
        let path = |name| env(name).map(PathBuf::from);
        tls.cafile = path("CONSUL_CACERT").or(tls.cafile.take());
        tls.capath = path("CONSUL_CAPATH").or(tls.capath.take());
        tls.clientcert = path("CONSUL_CLIENT_CERT").or(tls.clientcert.take());
        tls.clientkey = path("CONSUL_CLIENT_KEY").or(tls.clientkey.take());
        tls.servername = env("CONSUL_TLS_SERVER_NAME").or(tls.servername.take());
        if let Some(verify) = env("CONSUL_HTTP_SSL_VERIFY") {
            tls.verify = parse_bool("CONSUL_HTTP_SSL_VERIFY", &verify)?;
        }
        Ok(settings)
    }

    fn from_config(config: Option<&ConsulConfig>) -> ConsulSettings {
        ConsulSettings {
            address: config.map_or(DEFAULT_ADDRESS.to_string(), |c| c.address.clone()),
            scheme: config.map_or("http".to_string(), |c| c.scheme.clone()),
            token: config.and_then(|c| c.token.clone()).map(Secret),
            basic_auth: None,
            // Not `TlsConfig::default()`: that has `verify: false`.
            tls: config
                .and_then(|c| c.tls.clone())
                .unwrap_or_else(verified_tls),
        }
    }
}

fn verified_tls() -> TlsConfig {
    TlsConfig {
        verify: true,
        ..TlsConfig::default()
    }
}

/// Splits `CONSUL_HTTP_ADDR` (`host:port` or `http[s]://host:port`) into scheme and address.
fn split_address(addr: &str) -> Result<(Option<String>, String), DiscoveryError> {
    let (scheme, rest) = match addr.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (Some(scheme.to_string()), rest),
        Some((scheme, _)) => {
            return Err(DiscoveryError::Settings {
                setting: "CONSUL_HTTP_ADDR",
                reason: format!("unsupported scheme {scheme:?} (use http or https)"),
            })
        }
        None => (None, addr),
    };
    Ok((scheme, rest.trim_end_matches('/').to_string()))
}

fn read_token_file(path: &Path) -> Result<Secret, DiscoveryError> {
    std::fs::read_to_string(path)
        .map(|token| Secret(token.trim().to_string()))
        .map_err(|error| DiscoveryError::Settings {
            setting: "CONSUL_HTTP_TOKEN_FILE",
            reason: format!("cannot read {}: {error}", path.display()),
        })
}

fn parse_basic_auth(auth: &str) -> BasicAuth {
    match auth.split_once(':') {
        Some((user, password)) => BasicAuth {
            user: user.to_string(),
            password: Some(Secret(password.to_string())),
        },
        None => BasicAuth {
            user: auth.to_string(),
            password: None,
        },
    }
}

/// Go's `strconv.ParseBool`, which Consul uses for its boolean variables.
fn parse_bool(setting: &'static str, value: &str) -> Result<bool, DiscoveryError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(DiscoveryError::Settings {
            setting,
            reason: format!("{value:?} is not a boolean"),
        }),
    }
}

/// A client of one Consul agent.
pub(crate) struct ConsulBackend {
    client: Client,
    base: Url,
}

impl fmt::Debug for ConsulBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulBackend")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ConsulBackend {
    pub(crate) fn new(settings: ConsulSettings) -> Result<ConsulBackend, DiscoveryError> {
        let base = parse_base_url(&settings)?;
        let mut builder = Client::builder().default_headers(auth_headers(&settings)?);
        if settings.scheme == "https" {
            builder = configure_tls(builder, &settings.tls)?;
            if let Some(server_name) = &settings.tls.servername {
                builder = verify_as(builder, server_name);
            }
        }
        Ok(ConsulBackend {
            client: build_client(builder, BACKEND)?,
            base,
        })
    }

    /// `PUT /v1/agent/service/register` with a TTL check (docs/design.md, "Discovery").
    pub(crate) async fn register(
        &self,
        service: &ServiceRegistration,
    ) -> Result<(), DiscoveryError> {
        let request = self
            .put(&["v1", "agent", "service", "register"])
            .json(&register_body(service));
        call("register").send(request).await.map(drop)
    }

    /// Sets the check passing; on any non-2xx answer registers again and retries once.
    pub(crate) async fn pass(
        &self,
        service: &ServiceRegistration,
        output: &str,
    ) -> Result<(), DiscoveryError> {
        match self
            .update_check(service, CheckStatus::Passing, output)
            .await
        {
            Err(DiscoveryError::Rejected { status, .. }) => {
                tracing::debug!(
                    service = %service.id,
                    status,
                    "consul does not know the check; registering the service again"
                );
                self.register(service).await?;
                self.update_check(service, CheckStatus::Passing, output)
                    .await
            }
            other => other,
        }
    }

    /// Sets the check critical with `output`. No re-registration: a service the agent does
    /// not know is not advertised, which is what critical means anyway.
    pub(crate) async fn mark_critical(
        &self,
        service: &ServiceRegistration,
        output: &str,
    ) -> Result<(), DiscoveryError> {
        self.update_check(service, CheckStatus::Critical, output)
            .await
    }

    /// `PUT /v1/agent/service/deregister/<ID>`.
    pub(crate) async fn deregister(
        &self,
        service: &ServiceRegistration,
    ) -> Result<(), DiscoveryError> {
        let request = self.put(&["v1", "agent", "service", "deregister", &service.id]);
        call("deregister").send(request).await.map(drop)
    }

    /// `GET /v1/health/service/<name>?passing=1[&tag=][&dc=][&index=&wait=]`.
    pub(crate) async fn healthy_instances(
        &self,
        watch: &WatchConfig,
        index: u64,
    ) -> Result<HealthyInstances, DiscoveryError> {
        let call = call("health query");
        let mut url = self.url(&["v1", "health", "service", &watch.name]);
        let timeout = {
            let mut query = url.query_pairs_mut();
            query.append_pair("passing", "1");
            if let Some(tag) = &watch.tag {
                query.append_pair("tag", tag);
            }
            if let Some(dc) = &watch.dc {
                query.append_pair("dc", dc);
            }
            if index > 0 {
                let wait = watch.interval.min(MAX_WAIT);
                query.append_pair("index", &index.to_string());
                query.append_pair("wait", &go_duration(wait));
                blocking_timeout(wait)
            } else {
                REQUEST_TIMEOUT
            }
        };
        let response = call.send(self.client.get(url).timeout(timeout)).await?;
        let index = consul_index(response.headers());
        let entries: Vec<HealthEntry> = call.decode(response).await?;
        Ok(HealthyInstances {
            instances: entries
                .into_iter()
                .map(HealthEntry::into_instance)
                .collect(),
            index,
        })
    }

    /// `GET /v1/<segments>?<params>`, as a blocking query past `index` (at most `wait`)
    /// when `index > 0`. The body (`None` on a 404: an absent KV key) and the index to
    /// block on next. The catalog and KV reads of render templates go through here.
    pub(crate) async fn read(
        &self,
        operation: &'static str,
        segments: &[&str],
        params: &[(&str, &str)],
        index: u64,
        wait: Duration,
    ) -> Result<(Option<Value>, u64), DiscoveryError> {
        let call = call(operation);
        let mut url = self.url(segments);
        url.query_pairs_mut().extend_pairs(params);
        let timeout = if index > 0 {
            let wait = wait.min(MAX_WAIT);
            url.query_pairs_mut()
                .append_pair("index", &index.to_string())
                .append_pair("wait", &go_duration(wait));
            blocking_timeout(wait)
        } else {
            REQUEST_TIMEOUT
        };
        let response = call
            .send_or_absent(self.client.get(url).timeout(timeout))
            .await?;
        let index = consul_index(response.headers());
        if response.status() == http::StatusCode::NOT_FOUND {
            return Ok((None, index));
        }
        Ok((Some(call.decode(response).await?), index))
    }

    /// `PUT /v1/agent/check/update/service:<ID>` with `{"Status","Output"}`.
    async fn update_check(
        &self,
        service: &ServiceRegistration,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), DiscoveryError> {
        let check_id = format!("service:{}", service.id);
        let request = self
            .put(&["v1", "agent", "check", "update", &check_id])
            .json(&json!({ "Status": status_name(status), "Output": output }));
        call("check update").send(request).await.map(drop)
    }

    fn put(&self, segments: &[&str]) -> RequestBuilder {
        self.client.put(self.url(segments)).timeout(REQUEST_TIMEOUT)
    }

    /// The agent's URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        self.base.join(segments)
    }
}

fn call(operation: &'static str) -> Call {
    Call {
        backend: BACKEND,
        operation,
    }
}

fn status_name(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Passing => "passing",
        CheckStatus::Warning => "warning",
        CheckStatus::Critical => "critical",
    }
}

/// The register body (docs/design.md, "Discovery"). The embedded check gets the ID `service:<ID>`.
fn register_body(service: &ServiceRegistration) -> Value {
    let mut check = json!({
        "TTL": go_duration(service.ttl),
        "Status": status_name(service.registration_status()),
        "Notes": format!("TTL for {} set by autopilot", service.name),
    });
    if let Some(after) = service.deregister_critical_service_after {
        check["DeregisterCriticalServiceAfter"] = json!(go_duration(after));
    }
    json!({
        "ID": service.id,
        "Name": service.name,
        "Tags": service.tags,
        "Port": service.port,
        "Address": service.address.to_string(),
        "EnableTagOverride": service.enable_tag_override,
        "Check": check,
    })
}

/// `X-Consul-Index`; 0 (answer at once next time) when missing or unreadable.
fn consul_index(headers: &HeaderMap) -> u64 {
    headers
        .get("X-Consul-Index")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// One entry of `/v1/health/service/<name>`; only what a watch compares.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: HealthNode,
    service: HealthService,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthNode {
    #[serde(default)]
    address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthService {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    address: String,
    port: u16,
}

impl HealthEntry {
    /// The service's address, or its node's when the service registered none.
    fn into_instance(self) -> Instance {
        let address = if self.service.address.is_empty() {
            self.node.address
        } else {
            self.service.address
        };
        Instance {
            id: self.service.id,
            address,
            port: self.service.port,
        }
    }
}

fn parse_base_url(settings: &ConsulSettings) -> Result<Url, DiscoveryError> {
    let text = format!("{}://{}", settings.scheme, settings.address);
    Url::parse(&text).map_err(|error| DiscoveryError::Settings {
        setting: "consul.address",
        reason: format!("{text:?} is not a usable address: {error}"),
    })
}

/// `X-Consul-Token` and basic auth as default headers, marked sensitive so that no debug
/// output of the HTTP stack shows them.
fn auth_headers(settings: &ConsulSettings) -> Result<HeaderMap, DiscoveryError> {
    let mut headers = HeaderMap::new();
    if let Some(token) = &settings.token {
        headers.insert("X-Consul-Token", sensitive("consul.token", token.expose())?);
    }
    if let Some(auth) = &settings.basic_auth {
        let password = auth.password.as_ref().map_or("", Secret::expose);
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", auth.user));
        headers.insert(
            AUTHORIZATION,
            sensitive("CONSUL_HTTP_AUTH", &format!("Basic {encoded}"))?,
        );
    }
    Ok(headers)
}

fn sensitive(setting: &'static str, value: &str) -> Result<HeaderValue, DiscoveryError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| DiscoveryError::Settings {
        setting,
        reason: "contains characters not allowed in an HTTP header".to_string(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Trust roots, client certificate and verification from the TLS settings. With a CA file
/// or path, only those CAs are trusted (as in Consul); otherwise the bundled web roots.
fn configure_tls(
    mut builder: ClientBuilder,
    tls: &TlsConfig,
) -> Result<ClientBuilder, DiscoveryError> {
    let roots = ca_certificates(tls)?;
    if !roots.is_empty() {
        builder = builder.tls_built_in_root_certs(false);
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    match (&tls.clientcert, &tls.clientkey) {
        (Some(cert), Some(key)) => builder = builder.identity(client_identity(cert, key)?),
        (None, None) => {}
        _ => {
            return Err(DiscoveryError::Settings {
                setting: "consul.tls",
                reason: "clientcert and clientkey must be given together".to_string(),
            })
        }
    }
    Ok(builder.danger_accept_invalid_certs(!tls.verify))
}

fn ca_certificates(tls: &TlsConfig) -> Result<Vec<Certificate>, DiscoveryError> {
    let mut files = Vec::new();
    if let Some(file) = &tls.cafile {
        files.push(file.clone());
    }
    if let Some(dir) = &tls.capath {
        files.extend(files_in(dir)?);
    }
    let mut roots = Vec::new();
    for file in files {
        let pem = read_pem("consul.tls.cafile", &file)?;
        let certs = Certificate::from_pem_bundle(&pem).map_err(|error| unusable(&file, error))?;
        roots.extend(certs);
    }
    Ok(roots)
}

/// The regular files of a CA directory, sorted (every one must hold certificates, as in
/// Consul's own loader).
fn files_in(dir: &Path) -> Result<Vec<PathBuf>, DiscoveryError> {
    let unreadable = |error: std::io::Error| DiscoveryError::Settings {
        setting: "consul.tls.capath",
        reason: format!("cannot read {}: {error}", dir.display()),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn client_identity(cert: &Path, key: &Path) -> Result<Identity, DiscoveryError> {
    let mut pem = read_pem("consul.tls.clientcert", cert)?;
    pem.push(b'\n');
    pem.extend(read_pem("consul.tls.clientkey", key)?);
    Identity::from_pem(&pem).map_err(|error| unusable(cert, error))
}

fn read_pem(setting: &'static str, path: &Path) -> Result<Vec<u8>, DiscoveryError> {
    std::fs::read(path).map_err(|error| DiscoveryError::Settings {
        setting,
        reason: format!("cannot read {}: {error}", path.display()),
    })
}

fn unusable(path: &Path, error: crate::http_client::Error) -> DiscoveryError {
    DiscoveryError::Settings {
        setting: "consul.tls",
        reason: format!("{} holds no usable PEM data: {error}", path.display()),
    }
}

/// `tls.servername`: verify the agent's certificate for `server_name` while connecting to
/// the configured address.
fn verify_as(builder: ClientBuilder, server_name: &str) -> ClientBuilder {
    builder.tls_server_name(server_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn config() -> ConsulConfig {
        ConsulConfig {
            address: "consul:8500".to_string(),
            scheme: "http".to_string(),
            token: Some("from-config".to_string()),
            tls: None,
        }
    }

    #[test]
    fn config_alone_is_used_as_is_and_verifies_tls() {
        let settings = ConsulSettings::resolve(Some(&config()), env(&[])).unwrap();
        assert_eq!(settings.address, "consul:8500");
        assert_eq!(settings.scheme, "http");
        assert_eq!(settings.token, Some(Secret::new("from-config")));
        assert!(settings.tls.verify);
    }

    #[test]
    fn no_config_means_the_local_agent() {
        let settings = ConsulSettings::resolve(None, env(&[])).unwrap();
        assert_eq!(settings.address, "127.0.0.1:8500");
        assert_eq!(settings.token, None);
    }

    #[test]
    fn environment_overrides_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "from-file\n").unwrap();
        let settings = ConsulSettings::resolve(
            Some(&config()),
            env(&[
                ("CONSUL_HTTP_ADDR", "https://agent.local:8501/"),
                ("CONSUL_HTTP_TOKEN", "from-env"),
                ("CONSUL_HTTP_TOKEN_FILE", token_file.to_str().unwrap()),
                ("CONSUL_HTTP_AUTH", "alice:s3cret"),
                ("CONSUL_CACERT", "/ca.pem"),
                ("CONSUL_CAPATH", "/cas"),
                ("CONSUL_CLIENT_CERT", "/cert.pem"),
                ("CONSUL_CLIENT_KEY", "/key.pem"),
                ("CONSUL_TLS_SERVER_NAME", "server.dc1.consul"),
                ("CONSUL_HTTP_SSL_VERIFY", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.address, "agent.local:8501");
        assert_eq!(settings.scheme, "https");
        assert_eq!(settings.token, Some(Secret::new("from-file")));
        assert_eq!(
            settings.basic_auth,
            Some(BasicAuth {
                user: "alice".to_string(),
                password: Some(Secret::new("s3cret")),
            })
        );
        assert_eq!(
            settings.tls,
            TlsConfig {
                cafile: Some("/ca.pem".into()),
                capath: Some("/cas".into()),
                clientcert: Some("/cert.pem".into()),
                clientkey: Some("/key.pem".into()),
                servername: Some("server.dc1.consul".to_string()),
                verify: false,
            }
        );
    }

    #[test]
    fn plain_address_keeps_the_scheme_and_ssl_switches_to_https() {
        let settings = ConsulSettings::resolve(
            Some(&config()),
            env(&[
                ("CONSUL_HTTP_ADDR", "10.0.0.1:8500"),
                ("CONSUL_HTTP_SSL", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.address, "10.0.0.1:8500");
        assert_eq!(settings.scheme, "https");
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let settings =
            ConsulSettings::resolve(Some(&config()), env(&[("CONSUL_HTTP_TOKEN", "")])).unwrap();
        assert_eq!(settings.token, Some(Secret::new("from-config")));
    }

    #[test]
    fn bad_values_are_named() {
        let error =
            ConsulSettings::resolve(None, env(&[("CONSUL_HTTP_SSL_VERIFY", "maybe")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "CONSUL_HTTP_SSL_VERIFY: \"maybe\" is not a boolean"
        );
        let error =
            ConsulSettings::resolve(None, env(&[("CONSUL_HTTP_ADDR", "unix:///consul.sock")]))
                .unwrap_err();
        assert!(error
            .to_string()
            .starts_with("CONSUL_HTTP_ADDR: unsupported scheme \"unix\""));
        let error =
            ConsulSettings::resolve(None, env(&[("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/t")]))
                .unwrap_err();
        assert!(error.to_string().contains("/nonexistent/t"));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let settings = ConsulSettings::resolve(
            Some(&config()),
            env(&[("CONSUL_HTTP_AUTH", "alice:pa55word")]),
        )
        .unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("from-config"), "{shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn node_address_stands_in_for_an_empty_service_address() {
        let entries: Vec<HealthEntry> = serde_json::from_str(
            r#"[{"Node":{"Address":"10.0.0.9"},"Service":{"ID":"a","Address":"","Port":80}},
                {"Node":{"Address":"10.0.0.9"},"Service":{"ID":"b","Address":"10.1.1.1","Port":81}}]"#,
        )
        .unwrap();
        let instances: Vec<Instance> = entries
            .into_iter()
            .map(HealthEntry::into_instance)
            .collect();
        assert_eq!(instances[0].address, "10.0.0.9");
        assert_eq!(instances[1].address, "10.1.1.1");
    }
}
