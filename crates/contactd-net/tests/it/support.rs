//! Test certificates, listeners on port 0 that echo what they read, and TLS clients.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use contactd_net::{ConnectionInfo, Listener, ListenerSettings, TlsFiles};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_stream::StreamExt;

/// Long enough for a loaded machine to do anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM and DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Issued {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        roots
    }

    /// A server certificate for `localhost` and 127.0.0.1; `serial` tells them apart.
    pub fn server(&self, serial: u64) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.serial_number = Some(serial.into());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    pub fn client(&self, sans: Vec<SanType>, common_name: Option<&str>) -> Issued {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(common_name) = common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
        }
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

pub fn uri(value: &str) -> SanType {
    SanType::URI(value.try_into().unwrap())
}

pub fn dns(value: &str) -> SanType {
    SanType::DnsName(value.try_into().unwrap())
}

/// The server's files in a directory of their own.
pub struct ServerFiles {
    _dir: tempfile::TempDir,
    pub files: TlsFiles,
}

impl ServerFiles {
    pub fn new(server: &Issued, client_ca: Option<&Ca>) -> ServerFiles {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let files = TlsFiles {
            cert: path("server.pem"),
            key: path("server.key"),
            client_ca: client_ca.map(|_| path("client-ca.pem")),
        };
        std::fs::write(&files.cert, &server.cert_pem).unwrap();
        std::fs::write(&files.key, &server.key_pem).unwrap();
        if let (Some(ca), Some(path)) = (client_ca, &files.client_ca) {
            std::fs::write(path, ca.pem()).unwrap();
        }
        ServerFiles { _dir: dir, files }
    }

    pub fn rewrite(&self, server: &Issued) {
        std::fs::write(&self.files.cert, &server.cert_pem).unwrap();
        std::fs::write(&self.files.key, &server.key_pem).unwrap();
    }
}

pub fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}

pub fn settings(tls: Option<TlsFiles>) -> ListenerSettings {
    ListenerSettings {
        tls,
        alpn: Vec::new(),
        max_connections: 100,
        max_connections_per_ip: 100,
        idle_timeout: Duration::from_secs(30),
        handshake_timeout: Duration::from_secs(5),
        reload_interval: Duration::from_millis(100),
    }
}

pub async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A listener whose connections echo what they read until the client (or the idle timeout)
/// ends them; each connection's info is reported as it is taken.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub accepted: mpsc::UnboundedReceiver<ConnectionInfo>,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    pub async fn start(settings: ListenerSettings) -> EchoServer {
        let listener = Listener::new(bind().await, settings).unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, accepted) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut incoming = std::pin::pin!(listener.incoming());
            while let Some(connection) = incoming.next().await {
                let mut connection = connection.unwrap();
                let _ = report.send(connection.info().clone());
                tokio::spawn(async move {
                    let mut buffer = [0_u8; 1024];
                    loop {
                        match connection.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => {
                                if connection.write_all(&buffer[..read]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        EchoServer {
            addr,
            accepted,
            task,
        }
    }

    pub async fn next_accepted(&mut self) -> ConnectionInfo {
        tokio::time::timeout(PATIENCE, self.accepted.recv())
            .await
            .expect("a connection is accepted")
            .unwrap()
    }
}

pub fn client_config(roots: RootCertStore, identity: Option<&Issued>) -> ClientConfig {
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    match identity {
        Some(identity) => builder
            .with_client_auth_cert(vec![identity.der.clone()], identity.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

pub async fn tls_connect(
    addr: SocketAddr,
    config: ClientConfig,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("the handshake ends")
}

/// Writes `message` and reads it back, or tells why not.
pub async fn echo<S>(stream: &mut S, message: &[u8]) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(message).await?;
    let mut back = vec![0_u8; message.len()];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut back))
        .await
        .map_err(|_| std::io::Error::other("no echo in time"))??;
    Ok(back)
}

/// Reads until the server ends the connection (EOF or reset), or `PATIENCE` runs out.
pub async fn closed_by_server<S>(stream: &mut S) -> bool
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut buffer = [0_u8; 64];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}
