//! TLS 1.3 between peers, keyed by the nodes' ed25519 identities.
//!
//! Every node (and every submitter) presents a self-signed X.509
//! certificate whose subject public key *is* its ed25519 identity key, and
//! signs the TLS 1.3 handshake with that key. There are no certificate
//! authorities: a peer is authenticated by the key it proves it holds, and
//! its [`PeerId`] is the SHA-256 of that key, exactly as in signed
//! envelopes. So after a handshake:
//!
//! - the client knows the server holds the key of the peer id it meant to
//!   dial (when it knew one: [`Transport::connect`] with `expected`), or
//!   learns which peer id answered (bootstrap addresses), and the key is
//!   pinned for every reconnection of that channel;
//! - the server knows the peer id of its caller ([`caller`]); client
//!   certificates are mandatory.
//!
//! Nothing else in the certificate (names, validity dates, issuer) is
//! trusted or checked: only the subject public key, which must be an
//! ed25519 key, and the handshake signature made with it. TLS 1.2 is not
//! offered. Plaintext ([`Transport::Insecure`]) exists for debugging with
//! standard tools and is only ever chosen explicitly (`--insecure`).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use ed25519_dalek::{Signature, VerifyingKey};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, PeerIncompatible,
    ServerConfig, SignatureScheme,
};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{Identity, PeerId};

/// DER of an ed25519 `SubjectPublicKeyInfo` up to the 32 key bytes
/// (RFC 8410: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER of an ed25519 PKCS#8 v1 private key up to the 32 seed bytes
/// (RFC 8410 §7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The name a client puts in its handshake. Certificates are matched by
/// key, never by name, so this is a constant (and SNI is not sent).
const SERVER_NAME: &str = "peergrid.invalid";

/// ALPN protocol of gRPC over TLS.
const ALPN_H2: &[u8] = b"h2";

/// What can go wrong setting up or using a TLS connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate could not be made from the identity key.
    #[error("could not make this node's TLS certificate: {0}")]
    Certificate(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A peer's certificate does not hold an ed25519 key.
    #[error("the peer's certificate does not carry an ed25519 public key")]
    NotEd25519,
    /// The address could not be dialled or the handshake failed.
    #[error("{addr}: {reason}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// The error chain, e.g. a key mismatch.
        reason: String,
    },
}

/// How a node or client talks to peers: TLS 1.3 keyed by identity (the
/// default everywhere) or plaintext for debugging.
#[derive(Clone)]
pub enum Transport {
    /// TLS 1.3, mutually authenticated by ed25519 identity keys.
    Tls(Arc<Tls>),
    /// Plaintext HTTP/2: no encryption, no authentication of the address.
    Insecure,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(tls) => write!(f, "Tls({})", tls.peer.short()),
            Self::Insecure => f.write_str("Insecure"),
        }
    }
}

/// A connected channel and, over TLS, the peer id that answered.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The gRPC channel (reconnects pin the same key).
    pub channel: Channel,
    /// The peer id proven in the handshake; `None` over plaintext.
    pub peer: Option<PeerId>,
}

impl Transport {
    /// TLS with `identity`'s key.
    pub fn tls(identity: &Identity) -> Result<Self, TlsError> {
        Ok(Self::Tls(Arc::new(Tls::new(identity)?)))
    }

    /// TLS with `identity`'s key, or plaintext when `insecure`.
    pub fn new(identity: &Identity, insecure: bool) -> Result<Self, TlsError> {
        if insecure {
            Ok(Self::Insecure)
        } else {
            Self::tls(identity)
        }
    }

    /// Whether connections are encrypted and authenticated.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// Connects `endpoint` (built by the caller with its timeouts, URI
    /// `http://host:port`). Over TLS the handshake must prove `expected`'s
    /// key when it is given; otherwise whichever key answers is returned and
    /// pinned for later reconnections. The connect timeout of `endpoint`
    /// covers the handshake.
    pub async fn connect(
        &self,
        endpoint: Endpoint,
        expected: Option<PeerId>,
    ) -> Result<Connection, TlsError> {
        let addr = endpoint.uri().to_string();
        let connect_error = |e: tonic::transport::Error| TlsError::Connect {
            addr: addr.clone(),
            reason: error_chain(&e),
        };
        match self {
            Self::Insecure => {
                let channel = endpoint.connect().await.map_err(connect_error)?;
                Ok(Connection {
                    channel,
                    peer: None,
                })
            }
            Self::Tls(tls) => {
                let pin = Arc::new(Mutex::new(expected));
                let config = tls.client_config(Arc::clone(&pin))?;
                let connector = tower::service_fn(move |uri: Uri| {
                    let config = Arc::clone(&config);
                    async move { dial(uri, config).await }
                });
                let channel = endpoint
                    .connect_with_connector(connector)
                    .await
                    .map_err(connect_error)?;
                let peer = *pin.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(Connection { channel, peer })
            }
        }
    }
}

/// Opens TCP to `uri`'s authority and runs the client handshake.
async fn dial(
    uri: Uri,
    config: Arc<ClientConfig>,
) -> io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    let authority = uri
        .authority()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address has no host:port"))?
        .as_str()
        .to_string();
    let tcp = TcpStream::connect(&authority).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(SERVER_NAME)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(TokioIo::new(tls))
}

/// A node's TLS credentials and the server configuration built from them.
pub struct Tls {
    peer: PeerId,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    provider: Arc<CryptoProvider>,
    server: Arc<ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Makes the self-signed certificate of `identity` and the server
    /// configuration (TLS 1.3 only, client certificates mandatory, ALPN h2).
    pub fn new(identity: &Identity) -> Result<Self, TlsError> {
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&identity.secret_bytes());
        let key = PrivatePkcs8KeyDer::from(pkcs8);
        let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key, &rcgen::PKCS_ED25519)
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("peergrid {}", identity.peer_id()),
        );
        let cert = params
            .self_signed(&key_pair)
            .map_err(|e| TlsError::Certificate(e.to_string()))?
            .der()
            .clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(PeerVerifier { pin: None }))
            .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))?;
        server.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Self {
            peer: identity.peer_id(),
            cert,
            key,
            provider,
            server: Arc::new(server),
        })
    }

    /// The peer id this node presents.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// An acceptor for incoming connections.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.server))
    }

    /// A client configuration whose verifier checks (or records, then
    /// pins) the server's peer id in `pin`.
    fn client_config(
        &self,
        pin: Arc<Mutex<Option<PeerId>>>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier { pin: Some(pin) }))
            .with_client_auth_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        config.enable_sni = false;
        Ok(Arc::new(config))
    }
}

/// The peer id of the client of a server-side request, proven by its TLS
/// handshake; `None` over plaintext.
pub fn caller<T>(request: &tonic::Request<T>) -> Option<PeerId> {
    let certs = request.peer_certs()?;
    let cert = certs.first()?;
    certificate_key(cert)
        .ok()
        .and_then(|key| PeerId::from_public_key_bytes(&key))
}

/// The ed25519 public key a certificate carries as its subject public key.
///
/// A minimal DER walk of `Certificate → TBSCertificate → [version], serial,
/// signature, issuer, validity, subject, subjectPublicKeyInfo`; nothing else
/// in the certificate matters to peergrid.
pub fn certificate_key(der: &[u8]) -> Result<[u8; 32], TlsError> {
    fn walk(der: &[u8]) -> Option<[u8; 32]> {
        let (tag, certificate, _) = tlv(der)?;
        if tag != 0x30 {
            return None;
        }
        let (tag, tbs, _) = tlv(certificate)?;
        if tag != 0x30 {
            return None;
        }
        let mut rest = tbs;
        let (tag, _, after) = tlv(rest)?;
        if tag == 0xa0 {
            rest = after; // explicit [0] version
        }
        for _ in 0..5 {
            rest = tlv(rest)?.2; // serial, signature, issuer, validity, subject
        }
        let (_, _, after) = tlv(rest)?;
        let spki = &rest[..rest.len() - after.len()];
        let key = spki.strip_prefix(&ED25519_SPKI_PREFIX[..])?;
        key.try_into().ok()
    }
    walk(der).ok_or(TlsError::NotEd25519)
}

/// One DER TLV: (tag, contents, the bytes after it). Short and long form
/// lengths up to 4 bytes; anything else is refused.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// Verifies a peer's certificate by its key alone, on both sides.
///
/// On the client side `pin` holds the expected peer id (or `None` until the
/// first handshake records it); on the server side any ed25519 key is a
/// valid caller, identified by [`caller`].
#[derive(Debug)]
struct PeerVerifier {
    pin: Option<Arc<Mutex<Option<PeerId>>>>,
}

impl PeerVerifier {
    fn check_pin(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let key = certificate_key(cert)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let Some(pin) = &self.pin else {
            return Ok(());
        };
        let presented = PeerId::from_public_key_bytes(&key).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        let mut pinned = pin.lock().unwrap_or_else(PoisonError::into_inner);
        match *pinned {
            Some(expected) if expected != presented => Err(rustls::Error::InvalidCertificate(
                CertificateError::Other(rustls::OtherError(Arc::new(KeyMismatch {
                    expected,
                    presented,
                }))),
            )),
            Some(_) => Ok(()),
            None => {
                *pinned = Some(presented);
                Ok(())
            }
        }
    }

    fn verify_signature(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(PeerIncompatible::NoSignatureSchemesInCommon.into());
        }
        let key = certificate_key(cert)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let bad = || rustls::Error::InvalidCertificate(CertificateError::BadSignature);
        let key = VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
        let signature = Signature::from_slice(dss.signature()).map_err(|_| bad())?;
        key.verify_strict(message, &signature).map_err(|_| bad())?;
        Ok(HandshakeSignatureValid::assertion())
    }
}

/// The server presented another key than the one the client dialled for.
struct KeyMismatch {
    expected: PeerId,
    presented: PeerId,
}

impl fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer key mismatch: expected peer {}, the server proved {}",
            self.expected.short(),
            self.presented.short()
        )
    }
}

// rustls shows certificate errors with `Debug`: make it the message.
impl fmt::Debug for KeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for KeyMismatch {}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check_pin(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_pin(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(PeerIncompatible::Tls13RequiredForQuic.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::verify_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The error and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_identity_key() {
        let identity = Identity::generate();
        let tls = Tls::new(&identity).unwrap();
        assert_eq!(certificate_key(&tls.cert).unwrap(), identity.public_key());
        assert_eq!(tls.peer_id(), identity.peer_id());
    }

    #[test]
    fn garbage_certificates_are_refused() {
        for der in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x02, 0x01, 0x00][..],
        ] {
            assert!(matches!(certificate_key(der), Err(TlsError::NotEd25519)));
        }
        // A truncated real certificate.
        let tls = Tls::new(&Identity::generate()).unwrap();
        let cert = tls.cert.as_ref();
        for cut in [1, 10, cert.len() / 2, cert.len() - 1] {
            assert!(certificate_key(&cert[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn pinned_verifier_refuses_another_key() {
        let a = Tls::new(&Identity::generate()).unwrap();
        let b = Tls::new(&Identity::generate()).unwrap();
        let verifier = PeerVerifier {
            pin: Some(Arc::new(Mutex::new(Some(a.peer_id())))),
        };
        assert!(verifier.check_pin(&a.cert).is_ok());
        let err = verifier.check_pin(&b.cert).unwrap_err();
        assert!(err.to_string().contains("peer key mismatch"), "{err}");

        // Unpinned: the first key seen is pinned.
        let verifier = PeerVerifier {
            pin: Some(Arc::new(Mutex::new(None))),
        };
        assert!(verifier.check_pin(&b.cert).is_ok());
        assert!(verifier.check_pin(&a.cert).is_err());
    }
}
