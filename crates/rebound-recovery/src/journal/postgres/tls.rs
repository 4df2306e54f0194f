//! TLS for the journal's connections: rustls (with the `ring` provider)
//! under tokio-postgres, with libpq's `sslmode` meanings (see
//! [`SslMode`]).
//!
//! Both connections of a journal (the worker's, reconnecting, and the
//! `LISTEN` one) use the one [`MakeRustls`] built when the journal is
//! opened, so the roots are read once: a rotated `sslrootcert` file is
//! read again when the process starts again.
//!
//! SCRAM channel binding (`tls-server-end-point`) is not offered: a
//! server that offers `SCRAM-SHA-256-PLUS` is answered with plain
//! `SCRAM-SHA-256`, which it accepts; `channel_binding=require` fails.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::error::JournalError;
use crate::journal::address::{RootCerts, SslMode};

/// Makes the TLS connector of each connection: one rustls client
/// configuration, its certificate checks set by the `sslmode`.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for MakeRustls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeRustls").finish_non_exhaustive()
    }
}

impl MakeRustls {
    /// The connector for `mode`, with the CA certificates of `roots`
    /// (read only for the modes that check a certificate). `journal`
    /// names the journal in errors: a root file that cannot be read or
    /// holds no PEM certificate, no system roots, are
    /// [`JournalError::Invalid`].
    pub(crate) fn new(
        mode: SslMode,
        roots: &RootCerts,
        journal: &str,
    ) -> Result<Self, JournalError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let check = match mode {
            SslMode::Disable | SslMode::Prefer => Check::Nothing,
            SslMode::Require | SslMode::VerifyCa => {
                Check::Chain(Arc::new(load_roots(roots, journal)?))
            }
            SslMode::VerifyFull => Check::ChainAndName(Arc::new(load_roots(roots, journal)?)),
        };
        let verifier = Verifier {
            check,
            provider: Arc::clone(&provider),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| JournalError::Invalid(format!("journal {journal}: TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// The CA certificates of `roots`.
fn load_roots(roots: &RootCerts, journal: &str) -> Result<RootCertStore, JournalError> {
    let invalid = |what: String| JournalError::Invalid(format!("journal {journal}: {what}"));
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                invalid(format!(
                    "sslrootcert {} cannot be read: {e}",
                    path.display()
                ))
            })?;
            let certs = read_pem(&pem, path).map_err(invalid)?;
            for (i, cert) in certs.into_iter().enumerate() {
                store.add(cert).map_err(|e| {
                    invalid(format!(
                        "sslrootcert {}: certificate {} is not a usable CA certificate: {e}",
                        path.display(),
                        i + 1
                    ))
                })?;
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(invalid(format!(
                    "no system CA certificates found{}: set sslrootcert=FILE (a PEM file of the \
                     server's CA), or SSL_CERT_FILE",
                    if errors.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", errors.join("; "))
                    }
                )));
            }
        }
    }
    Ok(store)
}

/// The certificates of a PEM file; an error says what is wrong with it.
fn read_pem(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("sslrootcert {} is not a PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "sslrootcert {} holds no certificate: it must be a PEM file of CA certificates \
             (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// What is checked of the server's certificate.
#[derive(Debug)]
enum Check {
    /// Nothing (`prefer`): the handshake's signatures only.
    Nothing,
    /// The chain up to one of the roots (`require`, `verify-ca`).
    Chain(Arc<RootCertStore>),
    /// The chain, and that the certificate names the host (`verify-full`).
    ChainAndName(Arc<RootCertStore>),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (roots, name) = match &self.check {
            Check::Nothing => return Ok(ServerCertVerified::assertion()),
            Check::Chain(roots) => (roots, false),
            Check::ChainAndName(roots) => (roots, true),
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    /// Never fails: the driver asks for a connector before it knows
    /// whether TLS is used, with an empty `domain` for a Unix socket
    /// (never TLS) or a URL with `hostaddr` only; a name TLS cannot use
    /// fails the handshake, if there is one.
    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|e| {
            if domain.is_empty() {
                "TLS needs the server's host name (the URL's host), to check its certificate"
                    .to_owned()
            } else {
                format!("{domain:?} is not a host name TLS can check: {e}")
            }
        });
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(Arc::clone(&self.config)),
            name,
        })
    }
}

/// The TLS handshake of one connection.
pub(crate) struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    /// The server's name, or why there is none TLS can use.
    name: Result<ServerName<'static>, String>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let name = self
                .name
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            self.connector.connect(name, stream).await.map(RustlsStream)
        })
    }
}

/// A connection's TLS stream.
pub(crate) struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        // See the module documentation.
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// A hint for a TLS failure in the chain of `e` (a certificate the roots
/// do not vouch for, one for another host, a server without TLS), to add
/// to the driver's message; `None` for other errors.
pub(crate) fn hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut next = Some(e);
    while let Some(err) = next {
        // tokio-rustls wraps rustls's error in an io::Error, whose
        // `source` skips it.
        let inner = err
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        let tls = err
            .downcast_ref::<rustls::Error>()
            .or_else(|| inner.and_then(|i| i.downcast_ref::<rustls::Error>()));
        if let Some(tls) = tls {
            use rustls::CertificateError as C;
            return Some(match tls {
                rustls::Error::InvalidCertificate(
                    C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension,
                ) => {
                    "the server's certificate is not signed by a CA of sslrootcert (or the \
                     system's roots): give the CA that issued it"
                }
                rustls::Error::InvalidCertificate(
                    C::NotValidForName | C::NotValidForNameContext { .. },
                ) => {
                    "the server's certificate does not name the host connected to: connect \
                     by a name the certificate holds, or use sslmode=verify-ca"
                }
                rustls::Error::InvalidCertificate(
                    C::Expired
                    | C::ExpiredContext { .. }
                    | C::NotValidYet
                    | C::NotValidYetContext { .. },
                ) => "the server's certificate is out of its validity period",
                _ => "the TLS handshake failed",
            });
        }
        if err.to_string() == "server does not support TLS" {
            return Some(
                "the server does not offer TLS, and sslmode requires it (ssl = on in \
                 postgresql.conf)",
            );
        }
        next = err.source();
    }
    None
}
