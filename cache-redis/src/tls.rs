//! Loading and checking the PEM files of a TLS setup, with errors that name the file.

use std::path::Path;

use cache_core::{Error, Result, Setting};
use redis::{ClientTlsConfig, TlsCertificates};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::config::RedisConfig;

/// The certificates to hand to the Redis client, or `None` to use the system roots
/// without a client certificate.
///
/// Every file is read and parsed here, so a mistake is reported when the cache is
/// configured, naming the file, and not as an obscure handshake failure later.
pub(crate) fn load(config: &RedisConfig) -> Result<Option<TlsCertificates>> {
    let client_tls = match (&config.cert, &config.key) {
        (None, None) => None,
        (Some(cert), None) => {
            return Err(Error::Config {
                setting: Setting::TlsCert,
                reason: format!(
                    "client certificate {} is given without its private key (--redis-key); \
                     mutual TLS needs both",
                    cert.display()
                ),
            });
        }
        (None, Some(key)) => {
            return Err(Error::Config {
                setting: Setting::TlsKey,
                reason: format!(
                    "private key {} is given without its client certificate (--redis-cert); \
                     mutual TLS needs both",
                    key.display()
                ),
            });
        }
        (Some(cert), Some(key)) => {
            let client_cert = read(cert, "cannot read Redis TLS client certificate")?;
            certificates(&client_cert, cert, Setting::TlsCert)?;
            let client_key = read(key, "cannot read Redis TLS private key")?;
            private_key(&client_key, key)?;
            Some(ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
    };
    let root_cert = match &config.ca {
        None => None,
        Some(ca) => {
            let pem = read(ca, "cannot read Redis TLS CA file")?;
            let certs = certificates(&pem, ca, Setting::TlsCa)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots.add(cert).map_err(|e| Error::Config {
                    setting: Setting::TlsCa,
                    reason: format!(
                        "{} holds a certificate that is not a valid CA: {e}",
                        ca.display()
                    ),
                })?;
            }
            Some(pem)
        }
    };
    if client_tls.is_none() && root_cert.is_none() {
        return Ok(None);
    }
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn read(path: &Path, action: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(action, path, e))
}

/// The certificates of a PEM file; at least one, or an error naming the file.
fn certificates(pem: &[u8], path: &Path, setting: Setting) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config {
            setting,
            reason: format!("{} is not a valid PEM file: {e}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(Error::Config {
            setting,
            reason: format!(
                "{} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
                path.display()
            ),
        });
    }
    Ok(certs)
}

/// Checks that a PEM file holds a private key (PKCS#8, PKCS#1 or SEC1).
fn private_key(pem: &[u8], path: &Path) -> Result<()> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(_) => Ok(()),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(Error::Config {
            setting: Setting::TlsKey,
            reason: format!("{} holds no PEM private key", path.display()),
        }),
        Err(e) => Err(Error::Config {
            setting: Setting::TlsKey,
            reason: format!(
                "{} is not a valid PEM private key file: {e}",
                path.display()
            ),
        }),
    }
}
