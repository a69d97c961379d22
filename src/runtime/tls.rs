//! TLS set-up with rustls: the listener's certificate (from the profile, or self-signed).

use crate::config::Listener;
use anyhow::{Context, Result};
use std::sync::Arc;

pub(super) fn acceptor(l: &Listener, realm: &str) -> Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = match (&l.tls_cert, &l.tls_key) {
        (Some(c), Some(k)) => {
            let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
                std::fs::File::open(c).with_context(|| format!("opening {}", c.display()))?,
            ))
            .collect::<Result<Vec<_>, _>>()?;
            let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
                std::fs::File::open(k).with_context(|| format!("opening {}", k.display()))?,
            ))?
            .context("no private key in file")?;
            (certs, key)
        }
        _ => {
            let mut names = vec![
                "localhost".to_string(),
                realm.to_string(),
                l.addr.ip().to_string(),
            ];
            if let Some(a) = &l.advertised {
                names.push(a.split(':').next().unwrap_or(a).to_string());
            }
            let ck = rcgen::generate_simple_self_signed(names)?;
            let cert = ck.cert.der().clone();
            let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
            (vec![cert], key)
        }
    };
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Client configuration for outbound TLS trunks.
///
/// Carriers' certificates are checked against the system's trust store
/// (`/etc/ssl/certs/ca-certificates.crt`).
pub(super) fn connector() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Ok(f) = std::fs::File::open("/etc/ssl/certs/ca-certificates.crt") {
        for c in rustls_pemfile::certs(&mut std::io::BufReader::new(f)).flatten() {
            let _ = roots.add(c);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}
