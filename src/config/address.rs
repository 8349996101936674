//! Network addresses in a configuration: `host[:port]` (the Consul agent, a
//! `tcp` health check) and `http[s]://host[:port][/path]` (etcd endpoints,
//! `http` health checks). Only their syntax is checked, so a malformed
//! address fails `--check` with its field named instead of failing (or being
//! silently misread) at run time; whether a name resolves or a port answers
//! depends on the host and is left to run time. This module owns that syntax
//! and nothing else.
//!
//! Hand-written: std parses IP addresses, and a host name's syntax (RFC 1123
//! labels, with `_` as Docker service names use it) is a few lines, where a
//! URL crate would parse far more than these two forms and add to the binary.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::decode::Result;
use super::error::ConfigError;

/// Whether an address must name its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    Required,
    Optional,
}

/// Checks `host[:port]`: a host name, an IPv4 address or a bracketed IPv6
/// address, and a port from 1 to 65535.
pub(crate) fn check_host_port(text: &str, path: &str, port: Port) -> Result<()> {
    authority(text, port).map_err(|reason| {
        ConfigError::invalid(path, format!("{text:?} is not a valid address: {reason}"))
    })
}

/// Checks `scheme://host[:port][/path]` with an `http` or `https` scheme;
/// `scheme_required: false` also accepts a bare `host[:port][/path]` (read
/// as http).
pub(crate) fn check_http_url(text: &str, path: &str, scheme_required: bool) -> Result<()> {
    http_url(text, scheme_required).map_err(|reason| {
        ConfigError::invalid(path, format!("{text:?} is not a valid URL: {reason}"))
    })
}

fn http_url(text: &str, scheme_required: bool) -> std::result::Result<(), String> {
    let rest = match text.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some((scheme, _)) => return Err(format!("scheme {scheme:?} is not http or https")),
        None if scheme_required => return Err("it must start with http:// or https://".into()),
        None => text,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[end..].contains(char::is_whitespace) {
        return Err("it contains a space".into());
    }
    authority(&rest[..end], Port::Optional)
}

fn authority(text: &str, port: Port) -> std::result::Result<(), String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let (host, port_text) = split_port(text)?;
    match (port_text, port) {
        (Some(port), _) => check_port(port)?,
        (None, Port::Required) => return Err("the port is missing (host:port)".into()),
        (None, Port::Optional) => {}
    }
    check_host(host)
}

/// Splits `host:port` / `[v6]:port`; an unbracketed IPv6 address is an error.
fn split_port(text: &str) -> std::result::Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("\"[\" without \"]\" around the IPv6 address")?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| format!("{host:?} is not an IPv6 address"))?;
        return match after {
            "" => Ok((text, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((text, Some(port))),
                None => Err(format!("{after:?} after the IPv6 address")),
            },
        };
    }
    match text.split_once(':') {
        Some((_, port)) if port.contains(':') => {
            Err("an IPv6 address must be written in brackets ([::1]:8500)".into())
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((text, None)),
    }
}

fn check_port(text: &str) -> std::result::Result<(), String> {
    match text.parse::<u32>() {
        Ok(port) if (1..=65535).contains(&port) && !text.starts_with('+') => Ok(()),
        _ => Err(format!("port {text:?} is not a TCP port (1-65535)")),
    }
}

fn check_host(host: &str) -> std::result::Result<(), String> {
    if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() {
        return Ok(()); // a bracketed IPv6 address was checked when split
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let labels: Vec<&str> = host.strip_suffix('.').unwrap_or(host).split('.').collect();
    if host.is_empty() || host.len() > 253 || !labels.iter().all(|l| label_ok(l)) {
        return Err(format!(
            "{host:?} is not a host name or IP address (letters, digits, '-' and '_' between dots)"
        ));
    }
    if labels.iter().all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(format!("{host:?} is not an IPv4 address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        for good in [
            "consul:8500",
            "127.0.0.1:8500",
            "[::1]:8500",
            "consul",
            "consul.service.dc1.consul.:8500",
            "my_consul:1",
            "[fe80::1]",
        ] {
            assert!(
                check_host_port(good, "consul", Port::Optional).is_ok(),
                "{good}"
            );
        }
        for (bad, reason) in [
            ("127.0.0.1:99999", "port \"99999\" is not a TCP port"),
            ("127.0.0.1:0", "not a TCP port"),
            ("consul:", "not a TCP port"),
            ("http//bad address", "is not a host name"),
            ("::1:8500", "must be written in brackets"),
            ("[::1", "without \"]\""),
            ("[nope]:1", "not an IPv6 address"),
            ("300.1.1.1:80", "not an IPv4 address"),
            ("-x:80", "is not a host name"),
            ("", "it is empty"),
        ] {
            let error = check_host_port(bad, "consul", Port::Optional)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("consul: ") && error.contains(reason),
                "{bad}: {error}"
            );
        }
        let error = check_host_port("db", "jobs[0].health.tcp", Port::Required)
            .unwrap_err()
            .to_string();
        assert!(error.contains("the port is missing"), "{error}");
    }

    #[test]
    fn http_urls() {
        for good in ["http://etcd:2379", "https://[::1]:2379/", "http://h/x?y"] {
            assert!(check_http_url(good, "u", true).is_ok(), "{good}");
        }
        assert!(check_http_url("etcd:2379", "u", false).is_ok());
        for (bad, reason) in [
            ("etcd:2379", "must start with http://"),
            ("ftp://etcd", "scheme \"ftp\""),
            ("http://", "it is empty"),
            ("http://h:70000/", "not a TCP port"),
            ("http://h/a b", "contains a space"),
        ] {
            let error = check_http_url(bad, "u", true).unwrap_err().to_string();
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }
}
