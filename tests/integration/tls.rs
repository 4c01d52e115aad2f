//! A TLS listener end to end: a plain request and a WebSocket over TLS. A TLS WebSocket is
//! relayed through Pingora's session (the decryption state lives there), unlike a plain-TCP
//! one, which runs on its own task: this is the test of that second path.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::support::*;

/// Accepts the fixture's self-signed certificate (a CA certificate used as a server
/// certificate, which webpki refuses by design); signatures are still checked.
#[derive(Debug)]
struct FixtureCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for FixtureCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn connect(gh: &Proxy) -> StreamOwned<ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(FixtureCert(provider)))
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
        .unwrap();
    let tcp = TcpStream::connect(gh.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    StreamOwned::new(conn, tcp)
}

fn policy() -> String {
    let tls = fixtures().join("tls");
    format!(
        r#"
version: 1
server:
  listen: [{{ addr: "{{{{LISTEN}}}}", tls: {{ cert: "{}", key: "{}" }} }}]
  admin: "{{{{ADMIN}}}}"
upstream: {{ addr: "{{{{UPSTREAM}}}}" }}
defaults: {{ rate_limit: none }}
routes:
  - {{ name: health, match: {{ path: /health }}, auth: none }}
  - name: voice
    match: {{ path: /ws/voice }}
    auth: none
    websocket: {{ allow_missing_origin: true }}
"#,
        tls.join("server.pem").display(),
        tls.join("server.key").display()
    )
}

/// Reads until the end of the head; returns it and what followed.
fn read_head(s: &mut impl Read) -> (String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the head: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(i + 4);
            return (String::from_utf8_lossy(&data).into_owned(), rest);
        }
    }
}

#[test]
fn a_tls_listener_serves_requests_and_relays_websockets() {
    let up = Upstream::start();
    let gh = Proxy::start(&policy(), up.addr);

    let mut s = connect(&gh);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, _) = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let mut ws = connect(&gh);
    ws.write_all(
        b"GET /ws/voice HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let (head, mut rest) = read_head(&mut ws);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // A masked binary frame comes back unmasked from voiceflow's echo.
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x82, 0x80 | 5];
    frame.extend_from_slice(&mask);
    frame.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.write_all(&frame).unwrap();
    let mut buf = [0u8; 64];
    while rest.len() < 7 {
        let n = ws.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the echo");
        rest.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&rest[..7], b"\x82\x05hello");
    drop(ws);
    assert!(
        eventually(5, || gh.log().lines().any(|l| l.contains("\"status\":101")
            && l.contains("\"route\":\"voice\"")
            && l.contains("\"closed\":\"closed\""))),
        "{}",
        gh.log()
    );
}
