//! A bearer-token server for the test registry, as Docker Hub and most registries have: it
//! checks a user's basic credentials and answers with a JWT (RS256, the signing certificate
//! in its `x5c` header) granting the scopes asked for. The registry trusts that certificate.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

/// The service name tokens are issued for.
pub const TOKEN_SERVICE: &str = "peapod-test-registry";
/// The issuer named in tokens.
pub const TOKEN_ISSUER: &str = "peapod-test-issuer";

/// A running token server; stopped when dropped.
pub struct TokenServer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The certificate the registry must trust (PEM).
    pub cert: PathBuf,
    issued: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: String,
}

impl TokenServer {
    /// Starts a server that grants tokens to `user`/`password`; key material goes in `dir`.
    pub fn start(dir: &Path, user: &str, password: &str) -> Result<TokenServer> {
        std::fs::create_dir_all(dir)?;
        let openssl = |args: &[&str]| -> Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()?;
            if !out.status.success() {
                bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(())
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=peapod test token signer",
            "-keyout",
            "token.key",
            "-out",
            "token.pem",
        ])?;
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "token.key",
            "-outform",
            "DER",
            "-out",
            "token.pk8",
        ])?;
        openssl(&[
            "x509",
            "-in",
            "token.pem",
            "-outform",
            "DER",
            "-out",
            "token.der",
        ])?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(&std::fs::read(dir.join("token.pk8"))?)
            .map_err(|e| anyhow::anyhow!("token key: {e}"))?;
        let cert_der = std::fs::read(dir.join("token.der"))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let (issued, refused, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (i2, r2, s2) = (issued.clone(), refused.clone(), stop.clone());
        let user = user.to_string();
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = serve(stream, &expected, &user, &key, &cert_der, &i2, &r2);
            }
        });
        Ok(TokenServer {
            realm: format!("http://{addr}/token"),
            cert: dir.join("token.pem"),
            issued,
            refused,
            stop,
            addr,
        })
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::Relaxed)
    }

    /// Requests refused so far (no or wrong credentials).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: std::net::TcpStream,
    expected: &str,
    user: &str,
    key: &ring::signature::RsaKeyPair,
    cert_der: &[u8],
    issued: &AtomicUsize,
    refused: &AtomicUsize,
) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authorized = v.trim() == expected;
        }
    }
    let mut stream = stream;
    if !authorized {
        refused.fetch_add(1, Ordering::Relaxed);
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"wrong credentials"}]}"#;
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let target = request.split_whitespace().nth(1).context("request line")?;
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some(("scope", v)) = pair.split_once('=') else {
            continue;
        };
        let v = percent_decode(v);
        let parts: Vec<&str> = v.splitn(3, ':').collect();
        if let [ty, name, actions] = parts.as_slice() {
            access.push(json!({"type": ty, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
        }
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [STANDARD.encode(cert_der)]});
    let claims = json!({
        "iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now - 10,
        "jti": format!("{now}-{}", issued.load(Ordering::Relaxed)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig));
    let body =
        serde_json::to_string(&json!({"token": token, "access_token": token, "expires_in": 300}))?;
    issued.fetch_add(1, Ordering::Relaxed);
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
