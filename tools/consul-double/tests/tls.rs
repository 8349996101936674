//! HTTPS: the agent serving with a given certificate (`Config::tls`), over real TLS.

use std::sync::Arc;

use consul_double::rustls::{self, pki_types::PrivateKeyDer};
use consul_double::{Config, ConsulDouble};

/// A CA's PEM and a server configuration presenting a certificate of that CA for 127.0.0.1.
fn server_tls() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (ca.pem(), Arc::new(config))
}

#[test]
fn serves_https_with_the_given_certificate_and_records_only_what_got_through() {
    let (ca, tls) = server_tls();
    let consul = ConsulDouble::start(Config {
        tls: Some(tls),
        ..Config::default()
    })
    .unwrap();
    let https = format!("https://{}/v1/status/leader", consul.addr());
    let trusting = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let answer = trusting.get(&https).send().unwrap();
    assert_eq!(answer.status(), 200);

    let untrusting = reqwest::blocking::Client::new();
    assert!(untrusting.get(&https).send().is_err(), "unknown CA");
    let plain = format!("{}/v1/status/leader", consul.url());
    assert!(
        untrusting.get(&plain).send().is_err(),
        "plain HTTP to a TLS agent"
    );
    let requests = consul.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/status/leader");
}
