//! The webhook's TLS: the certificate and key come from PEM files (a mounted Secret, as
//! cert-manager writes it: `tls.crt`, `tls.key`) and are read again when they change, without a
//! restart.
//!
//! Each handshake looks at the files' metadata (size, modification time, inode: the kubelet
//! replaces a mounted Secret by swapping a symlink, which changes the inode). When they changed,
//! the pair is read and checked (the key must match the certificate); a pair that does not load
//! (cert-manager writes the two files one after the other) is logged and the previous one
//! stays in use until the files are whole again. A new certificate is therefore served from the
//! next connection on.

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// What identifies a version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

#[derive(Debug)]
struct Loaded {
    stamps: (Stamp, Stamp),
    key: Arc<CertifiedKey>,
}

/// Serves the certificate of two PEM files, read again when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

fn stamps(cert: &Path, key: &Path) -> io::Result<(Stamp, Stamp)> {
    Ok((
        Stamp::of(&std::fs::metadata(cert)?),
        Stamp::of(&std::fs::metadata(key)?),
    ))
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    // The key's bytes are never part of a message.
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: not a PEM private key ({e})", key.display()))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        format!(
            "{} and {}: the key does not go with the certificate ({e})",
            cert.display(),
            key.display()
        )
    })
}

impl ReloadingCert {
    /// Reads the pair once; an error here stops the server from starting.
    pub fn new(cert: PathBuf, key: PathBuf) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let stamps = stamps(&cert, &key)
            .map_err(|e| anyhow::anyhow!("webhook certificate {}: {e}", cert.display()))?;
        let loaded = load(&cert, &key, &provider).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            cert,
            key,
            provider,
            current: Mutex::new(Loaded {
                stamps,
                key: Arc::new(loaded),
            }),
        })
    }

    /// The pair to serve: read again when the files changed and now load.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().ok()?;
        if let Ok(now) = stamps(&self.cert, &self.key)
            && now != current.stamps
        {
            match load(&self.cert, &self.key, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert = %self.cert.display(), "webhook certificate reloaded");
                    *current = Loaded {
                        stamps: now,
                        key: Arc::new(key),
                    };
                }
                Err(e) => {
                    // Kept for the next handshake to try again; the old pair serves meanwhile.
                    tracing::warn!(error = %e, "webhook certificate changed but does not load; serving the previous one");
                }
            }
        }
        Some(Arc::clone(&current.key))
    }

    /// A rustls server configuration serving this certificate (HTTP/2 and HTTP/1.1).
    pub fn server_config(self: Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}
