//! The TLS configuration: read from the PEM files at start, then re-read every so often so that
//! renewed certificates apply to new connections without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::{NetError, TlsFiles};

/// The bytes of the files, compared to tell whether they changed.
#[derive(PartialEq, Eq)]
pub(crate) struct FileContents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

// Not derived: the key must never reach a log.
impl std::fmt::Debug for FileContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContents").finish_non_exhaustive()
    }
}

impl FileContents {
    pub(crate) fn read(files: &TlsFiles) -> Result<Self, NetError> {
        Ok(Self {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
            client_ca: files.client_ca.as_deref().map(read).transpose()?,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|source| NetError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, reason: impl std::fmt::Display) -> NetError {
    NetError::Invalid {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The server configuration the files describe, or which file is wrong and why.
pub(crate) fn server_config(
    files: &TlsFiles,
    contents: &FileContents,
    alpn: &[Vec<u8>],
) -> Result<ServerConfig, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.cert, &contents.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&contents.key)
        .map_err(|error| invalid(&files.key, format!("no usable private key: {error}")))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| invalid(&files.cert, error))?;
    let builder = match (&files.client_ca, &contents.client_ca) {
        (Some(path), Some(pem)) => {
            builder.with_client_cert_verifier(client_verifier(path, pem, provider)?)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|error| {
        invalid(
            &files.key,
            format!("does not go with {}: {error}", files.cert.display()),
        )
    })?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(path, format!("not PEM certificates: {error}")))?;
    if chain.is_empty() {
        return Err(invalid(path, "holds no certificate"));
    }
    Ok(chain)
}

fn client_verifier(
    path: &Path,
    pem: &[u8],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, NetError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path, pem)? {
        roots
            .add(certificate)
            .map_err(|error| invalid(path, format!("not a usable CA certificate: {error}")))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|error| invalid(path, error))
}

/// Re-reads the files every `interval` and publishes the new configuration when they changed
/// and parse. Ends when nobody receives the configuration any more.
pub(crate) async fn reload(
    files: TlsFiles,
    alpn: Vec<Vec<u8>>,
    interval: Duration,
    mut seen: FileContents,
    publish: watch::Sender<Arc<ServerConfig>>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await;
    // A broken file is reported once per problem, not at every tick.
    let mut reported: Option<String> = None;
    loop {
        tokio::select! {
            () = publish.closed() => return,
            _ = ticks.tick() => {}
        }
        let outcome = {
            let files = files.clone();
            let alpn = alpn.clone();
            // File reads block; a slow disk must not stall the runtime's workers.
            tokio::task::spawn_blocking(move || {
                let contents = FileContents::read(&files)?;
                Ok::<_, NetError>((contents, files, alpn))
            })
            .await
        };
        let (contents, files_read, alpn_read) = match outcome {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => {
                report(&mut reported, &error);
                continue;
            }
            Err(join_error) => {
                tracing::warn!(error = %join_error, "reading the TLS files failed");
                continue;
            }
        };
        if contents == seen {
            continue;
        }
        match server_config(&files_read, &contents, &alpn_read) {
            Ok(config) => {
                tracing::info!(
                    cert = %files.cert.display(),
                    "new TLS certificate files: new connections use them"
                );
                publish.send_replace(Arc::new(config));
                reported = None;
            }
            Err(error) => report(&mut reported, &error),
        }
        seen = contents;
    }
}

fn report(reported: &mut Option<String>, error: &NetError) {
    let message = error.to_string();
    if reported.as_deref() != Some(message.as_str()) {
        tracing::warn!(%error, "the TLS files were not reloaded; the previous ones stay in use");
        *reported = Some(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &tempfile::TempDir) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    #[tokio::test]
    async fn reloading_ends_once_nobody_takes_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(&dir);
        let contents = FileContents::read(&files).unwrap();
        let config = server_config(&files, &contents, &[]).unwrap();
        let (publish, current) = watch::channel(Arc::new(config));
        let reloading = tokio::spawn(reload(
            files,
            Vec::new(),
            Duration::from_millis(10),
            contents,
            publish,
        ));
        drop(current);
        tokio::time::timeout(Duration::from_secs(10), reloading)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_key_that_is_no_key_names_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(&dir);
        std::fs::write(
            &files.key,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let contents = FileContents::read(&files).unwrap();
        let error = server_config(&files, &contents, &[]).unwrap_err();
        assert!(matches!(error, NetError::Invalid { ref path, .. } if *path == files.key));
        assert!(error.to_string().contains("key.pem"), "{error}");
    }
}
