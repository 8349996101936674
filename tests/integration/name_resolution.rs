//! Name resolution as in a `scratch` image: the static binary, chrooted into a
//! directory that holds nothing but itself, its configuration, `/etc/hosts`
//! and `/etc/resolv.conf` (no NSS modules, no `nsswitch.conf`), resolves
//! names through getaddrinfo from both sources. A `tcp` health check reaches a
//! name only the hosts file knows; an `http` check reaches a name only the DNS
//! server knows, and keeps one connection for all its checks.
use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::DEADLINE;

const HOSTS_NAME: &str = "tcp.example.test";
const DNS_NAME: &str = "http.example.test";

/// A loopback address of this test's own (the DNS double needs port 53 of it).
fn private_loopback_address() -> Ipv4Addr {
    let [_, a, b, c] = (std::process::id() ^ 0x5a5a_0000).to_be_bytes();
    Ipv4Addr::new(127, a.max(1), b, c.max(2))
}

/// The smallest DNS server that answers getaddrinfo: an A record for `name`,
/// no AAAA record, NXDOMAIN for every other name. Serves until the test ends.
fn serve_dns(listen: Ipv4Addr, name: &str, address: Ipv4Addr) {
    let socket = UdpSocket::bind((listen, 53)).expect("the DNS double needs port 53 (root)");
    let wire_name: Vec<u8> = name
        .split('.')
        .flat_map(|label| std::iter::once(label.len() as u8).chain(label.bytes()))
        .chain([0])
        .collect();
    thread::spawn(move || {
        let mut query = [0; 512];
        while let Ok((length, client)) = socket.recv_from(&mut query) {
            if let Some(answer) = dns_answer(&query[..length], &wire_name, address) {
                let _ = socket.send_to(&answer, client);
            }
        }
    });
}

fn dns_answer(query: &[u8], known: &[u8], address: Ipv4Addr) -> Option<Vec<u8>> {
    let question_end = 12 + query.get(12..)?.iter().position(|&byte| byte == 0)? + 1 + 4;
    let question = query.get(12..question_end)?;
    let (name, kind) = question.split_at(question.len() - 4);
    let known_name = name.eq_ignore_ascii_case(known);
    let is_a = kind[..2] == [0, 1];
    let mut answer = query[..2].to_vec();
    // A response, recursion desired and available; NOERROR or NXDOMAIN.
    answer.extend_from_slice(if known_name {
        &[0x81, 0x80]
    } else {
        &[0x81, 0x83]
    });
    let records = u8::from(known_name && is_a);
    answer.extend_from_slice(&[0, 1, 0, records, 0, 0, 0, 0]);
    answer.extend_from_slice(question);
    if records == 1 {
        // The name (a pointer to the question's), type A, class IN, TTL 60.
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        answer.extend_from_slice(&address.octets());
    }
    Some(answer)
}

/// Accepts connections and counts them.
fn serve_tcp(listener: TcpListener) -> Arc<AtomicUsize> {
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    accepted
}

/// Answers every request `200 ok` on kept-alive connections; counts
/// connections and requests.
fn serve_http(listener: TcpListener) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (connection_count, request_count) = (Arc::clone(&connections), Arc::clone(&requests));
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            connection_count.fetch_add(1, Ordering::SeqCst);
            let requests = Arc::clone(&request_count);
            thread::spawn(move || answer_requests(stream, &requests));
        }
    });
    (connections, requests)
}

fn answer_requests(mut stream: TcpStream, requests: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => {
                requests.fetch_add(1, Ordering::SeqCst);
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if stream.write_all(answer).is_err() {
                    return;
                }
            }
            Ok(_) => {}
        }
    }
}

/// The chroot: the binary, its configuration and the two files of `/etc`.
fn scratch_root(root: &Path, address: Ipv4Addr, tcp_port: u16, http_port: u16) {
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hosts"), format!("{address} {HOSTS_NAME}\n")).unwrap();
    std::fs::write(
        root.join("etc/resolv.conf"),
        format!("nameserver {address}\noptions timeout:1 attempts:3\n"),
    )
    .unwrap();
    std::fs::copy(common::binary(), root.join("autopilot")).unwrap();
    let config = format!(
        r#"{{
          control: {{ socket: "/autopilot.socket" }},
          logging: {{ level: "DEBUG" }},
          jobs: [
            {{ name: "by-hosts-file",
               health: {{ tcp: "{HOSTS_NAME}:{tcp_port}", interval: 1, ttl: 10 }} }},
            {{ name: "by-dns",
               health: {{ http: "http://{DNS_NAME}:{http_port}/health", interval: 1, ttl: 10 }} }},
          ],
        }}"#
    );
    std::fs::write(root.join("autopilot.json5"), config).unwrap();
}

/// autopilot's stdout lines, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

#[test]
fn checks_resolve_names_from_the_hosts_file_and_dns_in_an_empty_root() {
    let address = private_loopback_address();
    serve_dns(address, DNS_NAME, address);
    let tcp = TcpListener::bind((address, 0)).unwrap();
    let http = TcpListener::bind((address, 0)).unwrap();
    let root = tempfile::tempdir().unwrap();
    scratch_root(
        root.path(),
        address,
        tcp.local_addr().unwrap().port(),
        http.local_addr().unwrap().port(),
    );
    let accepted = serve_tcp(tcp);
    let (connections, requests) = serve_http(http);

    let mut child = Command::new("chroot")
        .arg(root.path())
        .args(["/autopilot", "-config", "/autopilot.json5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chroot (coreutils) runs the test");
    let lines = lines_of(&mut child);
    let mut healthy = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while healthy.len() < 2 || requests.load(Ordering::SeqCst) < 3 {
        if Instant::now() > deadline {
            let _ = child.kill();
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!(
                "both checks did not pass (healthy: {healthy:?}, {} HTTP requests); \
                 autopilot's stderr: {stderr}",
                requests.load(Ordering::SeqCst)
            );
        }
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(50)) {
            if line.ends_with(".healthy") {
                healthy.push(line);
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    for job in ["by-hosts-file", "by-dns"] {
        let event = format!("event: {job}.healthy");
        assert!(
            healthy.iter().any(|line| line.ends_with(&event)),
            "{healthy:?}"
        );
    }
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "an http check reuses its connection from one check to the next"
    );
}
